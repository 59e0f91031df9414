"""The Spark engine end to end: with ``engine: spark`` the five notebooks run unchanged and give the
pandas run's results, and gathering on Spark applies the loaders' contract and doubtful-row rules.

PySpark runs in local mode (local[2]). The pipeline test runs the same small demo data set through
``journey run`` twice, once per engine, and compares every artifact (rtol 1e-9 for floats).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

if importlib.util.find_spec("pyspark") is None:
    pytest.skip("pyspark is not installed (pip install 'journey-analysis[spark]')", allow_module_level=True)

from journey_analysis.engines import spark as SP  # noqa: E402
from journey_analysis.datasets import write_demo  # noqa: E402
from journey_analysis.errors import JourneyError  # noqa: E402
from journey_analysis.gather import link_feedback, load_events  # noqa: E402
from journey_analysis.artifacts import load_artifact, save_artifact  # noqa: E402
from journey_analysis.runner import run_pipeline, subsample_customers  # noqa: E402
from journey_analysis.schema import QualityLog  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BAD, TRICKY = ROOT / "tests" / "data" / "bad", ROOT / "tests" / "data" / "tricky"
SPARK = {"spark.master": "local[2]", "spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g"}
STAGES = ["browse", "apply", "approve", "start", "visit", "support", "renewal", "awareness", "consideration",
          "purchase"]
RTOL = 1e-9


@pytest.fixture(scope="module")
def spark():
    return SP.get_spark(config={"spark": SPARK})


def _same_values(a: pd.DataFrame, b: pd.DataFrame, what: str) -> None:
    """Same columns and rows; floats equal with rtol 1e-9 (NaN == NaN), times equal as UTC instants,
    everything else equal as text (dtypes may differ between the engines' Parquet writers)."""
    assert list(a.columns) == list(b.columns), f"{what}: columns {list(a.columns)} vs {list(b.columns)}"
    assert len(a) == len(b), f"{what}: {len(a)} rows vs {len(b)}"
    for c in a.columns:
        x, y = a[c], b[c]
        if pd.api.types.is_float_dtype(x) or pd.api.types.is_float_dtype(y):
            ok = np.isclose(x.to_numpy(float), y.to_numpy(float), rtol=RTOL, atol=0, equal_nan=True)
            assert ok.all(), f"{what}.{c}: {(~ok).sum()} differ, e.g. {x[~ok].head(3).tolist()} vs {y[~ok].head(3).tolist()}"
        elif pd.api.types.is_datetime64_any_dtype(x) or pd.api.types.is_datetime64_any_dtype(y):
            def utc(s):
                s = pd.to_datetime(s)
                return s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
            u, v = utc(x).reset_index(drop=True), utc(y).reset_index(drop=True)
            assert ((u == v) | (u.isna() & v.isna())).all(), f"{what}.{c}"
        else:
            assert [str(v) for v in x] == [str(v) for v in y], f"{what}.{c}: {x.head(3).tolist()} vs {y.head(3).tolist()}"


# ---------------------------------------------------------------------------------------------
# gathering on Spark: the contract and the doubtful-row rules of the pandas loader
# ---------------------------------------------------------------------------------------------
EVENT_FILES = sorted(p.name for p in BAD.glob("events_*.csv")) + sorted(f"tricky/{p.name}" for p in TRICKY.glob("events_*.csv"))
#: Files both engines refuse, with the words the Spark engine's message must contain (its wording
#: differs where Spark reports the problem differently: it reads a directory as a dataset, decodes
#: UTF-8 with replacement characters and reads a ragged line in FAILFAST mode).
SPARK_WORDS = {
    "events_empty.csv": "empty (0 bytes)",
    "events_header_only.csv": "header but no data rows",
    "events_is_a_directory.csv": "no data files",
    "events_latin1.csv": "not UTF-8",
    "events_ragged.csv": "another number of fields",
    "events_missing_customer_id.csv": "no value in column 'customer_id'",
}


@pytest.mark.parametrize("name", EVENT_FILES)
def test_spark_loader_follows_the_pandas_rules(spark, name):
    path = (TRICKY / name.split("/")[1]) if name.startswith("tricky/") else BAD / name
    logs, out = [QualityLog(), QualityLog()], []
    for log, load in zip(logs, (load_events, lambda *a, **k: SP.load_events_spark(*a, spark=spark, **k))):
        try:
            out.append(load(path, None, stages=STAGES, log=log))
        except JourneyError as exc:
            out.append(exc)
    pandas_result, spark_result = out
    if isinstance(pandas_result, JourneyError):
        assert isinstance(spark_result, JourneyError), f"{name}: pandas refuses it, Spark loaded it"
        text = str(spark_result)
        assert SPARK_WORDS.get(name, str(pandas_result).splitlines()[0]) in text, text
        assert "Traceback" not in text
        if pandas_result.rows and name not in SPARK_WORDS:
            assert spark_result.rows == pandas_result.rows
        return
    assert not isinstance(spark_result, JourneyError), f"{name}: Spark refused it: {spark_result}"
    cols = ["file", "check", "severity", "rows", "first_rows", "rule", "detail"]
    pd.testing.assert_frame_equal(logs[1].frame()[cols], logs[0].frame()[cols])
    got = SP.to_pandas(spark_result.orderBy("row_id"))
    _same_values(got[list(pandas_result.columns)], pandas_result, name)


def test_partitioned_parquet_events_load_like_the_csv(spark, tmp_path):
    """A data lake layout: events in Parquet partitioned by month (``month=2024-07/`` folders), with
    the row_id our gather stage writes; read on Spark they equal the pandas loader's events of the CSV."""
    demo = ROOT / "data" / "raw" / "demo" / "events.csv.gz"
    ref = load_events(demo, stages=None)
    lake = tmp_path / "lake"
    lake_rows = ref.assign(month=ref["timestamp"].dt.strftime("%Y-%m"))
    with pytest.raises(JourneyError, match="nanoseconds"):  # pandas' default: a clear answer, not a Java error
        lake_rows.to_parquet(tmp_path / "ns", partition_cols=["month"])
        SP.load_events_spark(tmp_path / "ns", spark=spark)
    lake_rows.to_parquet(lake, partition_cols=["month"], coerce_timestamps="us")
    assert len(list(lake.glob("month=*"))) == 12
    got = SP.load_events_spark(lake, spark=spark)
    assert "month" in got.columns
    _same_values(SP.to_pandas(got.orderBy("row_id"))[list(ref.columns)], ref, "partitioned")
    by_uri = SP.load_events_spark(lake.as_uri(), spark=spark)  # a storage URI goes to Spark as written
    assert by_uri.count() == len(ref)
    with pytest.raises(JourneyError, match="not found"):
        SP.load_events_spark((tmp_path / "no-lake").as_uri(), spark=spark)


def test_feedback_linked_on_spark_like_pandas(spark):
    """The linking rule: the customer's last event at or before the feedback time; at equal times the
    later row of the file; nothing earlier -> unlinked; a given stage stays."""
    t = pd.Timestamp("2024-03-01T10:00:00Z")
    events = pd.DataFrame({
        "row_id": np.arange(5), "customer_id": ["c1", "c1", "c1", "c2", "c1"],
        "timestamp": [t, t + pd.Timedelta("1h"), t + pd.Timedelta("1h"), t + pd.Timedelta("5h"), t + pd.Timedelta("9h")],
        "stage": ["browse", "apply", "approve", "browse", "start"]})
    feedback = pd.DataFrame({
        "customer_id": ["c1", "c1", "c2", "c3", "c1", "c1"],
        "timestamp": [t + pd.Timedelta("1h"), t - pd.Timedelta("1s"), t + pd.Timedelta("6h"),
                      t + pd.Timedelta("9h"), t + pd.Timedelta("2h"), t + pd.Timedelta("10h")],
        "stage": [None, None, None, None, "visit", None]})
    ref = link_feedback(feedback, events)
    got = link_feedback(feedback, SP.to_spark(events, spark))
    pd.testing.assert_frame_equal(got, ref)
    assert [v if isinstance(v, str) else None for v in got["stage"]] == ["approve", None, "browse", None, "visit", "start"]
    assert got["stage_source"].tolist() == ["linked", "unlinked", "linked", "unlinked", "given", "linked"]


def test_spark_sample_of_customers_is_seeded(spark):
    demo = ROOT / "data" / "raw" / "demo"
    events = SP.load_events_spark(demo / "events.csv.gz", spark=spark)
    customers = pd.read_csv(demo / "customers.csv.gz", dtype={"customer_id": str})
    feedback = pd.read_csv(demo / "feedback.csv.gz", dtype={"customer_id": str})
    ev, cu, fb = subsample_customers(events, customers, feedback, 40, random_state=3)
    ids = sorted(r["customer_id"] for r in ev.select("customer_id").distinct().collect())
    again = subsample_customers(events, customers, feedback, 40, random_state=3)[0]
    other = subsample_customers(events, customers, feedback, 40, random_state=4)[0]
    assert len(ids) == 40
    assert ids == sorted(r["customer_id"] for r in again.select("customer_id").distinct().collect())
    assert ids != sorted(r["customer_id"] for r in other.select("customer_id").distinct().collect())
    assert sorted(cu["customer_id"]) == ids
    assert set(fb["customer_id"].dropna()) <= set(ids) and fb["customer_id"].isna().sum() == feedback["customer_id"].isna().sum()
    assert subsample_customers(events, customers, feedback, 10**6)[0] is events  # fewer customers: everyone


def test_spark_events_artifact_is_an_atomic_parquet_directory(spark, tmp_path):
    path = tmp_path / "events.parquet"
    first = SP.to_spark(pd.DataFrame({"customer_id": ["a", "b"], "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
                                      "stage": ["x", "y"]}), spark)
    save_artifact(first, path)
    save_artifact(first.filter("customer_id = 'a'"), path)  # replaces the directory as a whole
    assert path.is_dir() and (path / "_SUCCESS").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary copies left
    back = load_artifact(path, {"spark": SPARK})
    assert SP.is_spark_frame(back) and [r["customer_id"] for r in back.collect()] == ["a"]
    save_artifact(None, path)
    assert not path.exists() and load_artifact(path) is None


def _validate_on_spark(tmp_path, events=None, env=None, engine="spark") -> subprocess.CompletedProcess:
    """`journey validate` in a fresh process (its own JVM) on the good test data with engine: spark."""
    good = ROOT / "tests" / "data" / "good"
    cfg = yaml.safe_load((good / "config.yaml").read_text())
    cfg["data"] = {k: str(good / v) for k, v in cfg["data"].items()}
    if events is not None:
        cfg["data"]["events"] = str(events)
    cfg.update(engine=engine, spark=SPARK)
    path = tmp_path / f"{engine}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "journey_analysis.cli", "validate", "--config", str(path)],
                          capture_output=True, text=True, timeout=300, env=env)


def test_validate_on_spark_prints_what_pandas_prints(tmp_path):
    spark_run, pandas_run = _validate_on_spark(tmp_path), _validate_on_spark(tmp_path, engine="pandas")
    assert spark_run.returncode == pandas_run.returncode == 0
    assert spark_run.stdout == pandas_run.stdout and "Usable." in spark_run.stdout


def test_validate_on_spark_says_what_is_wrong_without_a_java_trace(tmp_path):
    done = _validate_on_spark(tmp_path, events=BAD / "events_ragged.csv")
    assert done.returncode == 1
    assert "another number of fields" in done.stderr and "events_ragged.csv" in done.stderr
    assert "Traceback" not in done.stderr and "at org.apache" not in done.stderr and "Py4J" not in done.stderr


def test_spark_that_cannot_start_says_why(tmp_path):
    done = _validate_on_spark(tmp_path, env={**os.environ, "JAVA_HOME": str(tmp_path / "no-java")})
    assert done.returncode == 1
    assert "Spark could not start" in done.stderr and "java -version" in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------
# the whole pipeline: journey run with engine: spark equals the pandas run
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    files = write_demo(root / "raw", n_customers=400, seed=2)
    results = {}
    for engine in ("pandas", "spark"):
        cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
        cfg["data"].update({k: str(files[k]) for k in ("events", "customers", "feedback", "observations")})
        cfg["data"].pop("later_period")     # the living map's later period: tested on pandas (test_notebooks)
        cfg.update(name=f"demo-{engine}", engine=engine, spark=SPARK)
        path = root / f"{engine}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        results[engine] = run_pipeline(path, reports_dir=root / "reports", processed_dir=root / "processed",
                                       extra_parameters={"n_boot": 20}, progress=False)
    return results


ARTIFACTS = ["quality", "customers", "feedback", "features", "segments", "journey_map", "transitions",
             "stage_metrics", "pain_points", "drivers", "theme_drivers", "gaps", "recommendations"]


@pytest.mark.parametrize("name", ARTIFACTS)
def test_spark_run_gives_the_pandas_run_artifacts(two_runs, name):
    a = pd.read_parquet(two_runs["pandas"].processed / f"{name}.parquet")
    b = pd.read_parquet(two_runs["spark"].processed / f"{name}.parquet")
    _same_values(b, a, name)


def test_spark_run_records_findings_and_events(two_runs):
    p, s = two_runs["pandas"], two_runs["spark"]
    assert {**s.records, "config_name": None} == {**p.records, "config_name": None}
    assert s.records["n_events"] > 1000 and s.records["k"] >= 2
    assert json.loads((s.processed / "findings.json").read_text()) == json.loads((p.processed / "findings.json").read_text())
    events_dir = s.processed / "events.parquet"
    assert events_dir.is_dir()  # written by Spark, read by Spark in notebooks 03-05
    ref = pd.read_parquet(p.processed / "events.parquet")
    got = pd.read_parquet(events_dir).sort_values("row_id", ignore_index=True)
    _same_values(got[list(ref.columns)], ref, "events")
    assert s.report.is_file() and "Traceback" not in s.report.read_text(encoding="utf-8")
    assert json.loads((s.folder / "stage_metrics.json").read_text())  # the next run is compared on these
