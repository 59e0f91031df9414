"""Tests for journey_analysis.engines.spark: the Spark engine returns the pandas engine's results.

Runs PySpark in local mode (local[2]) with one session for the module. On the shared real event
logs (helpdesk, receipt, BPIC-2012) and the demo data, every Spark function equals its pandas twin
in journey_analysis.steps / journey_analysis.segment: same columns, dtypes, row order and values
(floats with rtol 1e-9; sums and means add in another order, everything else is exact).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

if importlib.util.find_spec("pyspark") is None:
    pytest.skip("pyspark is not installed (pip install 'journey-analysis[spark]')", allow_module_level=True)

from journey_analysis import segment as SG  # noqa: E402
from journey_analysis.engines import spark as SP  # noqa: E402
from journey_analysis import steps as S  # noqa: E402
from journey_analysis.errors import JourneyError  # noqa: E402
from journey_analysis.eventlog import read_csv_log  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eventlogs"
LOGS = ["helpdesk", "receipt", "bpic2012"]
RTOL = 1e-9
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared event logs not found at {DATA}")


@pytest.fixture(scope="module")
def spark():
    session = SP.get_spark("local[2]", {"spark.sql.shuffle.partitions": "2"})
    yield session


def assert_same(ours: pd.DataFrame, ref: pd.DataFrame, what: str = ""):
    """Same columns, dtypes, row order; floats equal with rtol 1e-9 (NaN == NaN)."""
    assert list(ours.columns) == list(ref.columns), what
    assert len(ours) == len(ref), f"{what}: {len(ours)} rows vs {len(ref)}"
    for c in ref.columns:
        a, b = ours[c], ref[c]
        assert a.dtype == b.dtype, f"{what}.{c}: dtype {a.dtype} vs {b.dtype}"
        if pd.api.types.is_float_dtype(b.dtype):
            x, y = a.to_numpy(float), b.to_numpy(float)
            bad = ~np.isclose(x, y, rtol=RTOL, atol=0, equal_nan=True)
            assert not bad.any(), f"{what}.{c}: {bad.sum()} differ, e.g. {x[bad][:3]} vs {y[bad][:3]}"
        else:
            pd.testing.assert_series_equal(a, b, check_names=False, obj=f"{what}.{c}")


@lru_cache(maxsize=None)
def _pandas_log(name: str) -> pd.DataFrame:
    return read_csv_log(DATA / f"{name}.csv.gz")


_spark_logs: dict = {}


def _spark_log(spark, name: str):
    if name not in _spark_logs:
        _spark_logs[name] = SP.read_events_spark(DATA / f"{name}.csv.gz", spark).persist()
    return _spark_logs[name]


# ------------------------------------------------------------------------------------------
# Real event logs: equal to the pandas engine (which equals pm4py)
# ------------------------------------------------------------------------------------------
@needs_data
@pytest.mark.parametrize("name", LOGS)
def test_real_logs_equal_pandas(spark, name):
    pdf, sdf = _pandas_log(name), _spark_log(spark, name)
    assert sdf.count() == len(pdf)
    # row_id from the CSV read is the 0-based file row, as in pandas
    rid = sdf.select("row_id", "customer_id").orderBy("row_id").limit(5).toPandas()
    assert rid["row_id"].tolist() == list(range(5))
    assert rid["customer_id"].tolist() == pdf["customer_id"].head(5).tolist()
    assert_same(SP.step_stats(sdf, step="activity"), S.step_stats(pdf, step="activity"), f"{name} step_stats")
    tr = SP.transitions(sdf, step="activity")
    assert_same(tr, S.transitions(pdf, step="activity"), f"{name} transitions")
    summary = json.loads((DATA / f"{name}_pm4py_summary.json").read_text())
    assert len(tr) == summary["dfg_edges"] and tr["count"].sum() == summary["dfg_total_arcs"]
    assert_same(SP.variants(sdf, step="activity"), S.variants(pdf, step="activity"), f"{name} variants")
    jd = SP.journey_durations(sdf)
    assert_same(jd, S.journey_durations(pdf), f"{name} journey_durations")
    ref = pd.read_csv(DATA / f"{name}_pm4py_case_durations.csv.gz", dtype={"case_id": str},
                      keep_default_na=False).set_index("case_id")["duration_s"]
    assert np.allclose(jd.set_index("customer_id")["duration_s"].reindex(ref.index), ref, rtol=RTOL)


@needs_data
def test_bpic2012_pm4py_transitions_directly(spark):
    """Spark against pm4py's reference file itself (not only via pandas), the largest log."""
    tr = SP.transitions(_spark_log(spark, "bpic2012"), step="activity")
    ref = pd.read_csv(DATA / "bpic2012_pm4py_dfg_performance.csv", keep_default_na=False)
    m = ref.merge(tr, left_on=["source", "target"], right_on=["from_step", "to_step"], validate="1:1")
    assert len(m) == len(ref) == len(tr)
    for a, b in [("frequency", "count"), ("mean", "mean_s"), ("median", "median_s"), ("min", "min_s"),
                 ("max", "max_s"), ("sum", "sum_s")]:
        assert np.allclose(m[b], m[a], rtol=RTOL), a
    sd = pd.to_numeric(m["stdev"].replace("", np.nan))
    assert np.allclose(m["std_s"], sd, rtol=RTOL, equal_nan=True)
    # the self-loop the issue quotes
    assert int(tr[(tr.from_step == tr.to_step)]["count"].max()) == 13521


@needs_data
def test_funnel_and_options_on_helpdesk(spark):
    pdf, sdf = _pandas_log("helpdesk"), _spark_log(spark, "helpdesk")
    steps = ["Assign seriousness", "Take in charge ticket", "Resolve ticket", "Closed"]
    assert_same(SP.funnel(sdf, steps, step="activity", within=30 * 86400),
                S.funnel(pdf, steps, step="activity", within=30 * 86400), "funnel")
    assert_same(SP.funnel_dropoffs(sdf, steps, step="activity"),
                S.funnel_dropoffs(pdf, steps, step="activity"), "funnel_dropoffs")
    assert_same(SP.step_stats(sdf, step="activity", collapse_repeats=True),
                S.step_stats(pdf, step="activity", collapse_repeats=True), "step_stats collapse")
    assert_same(SP.start_end_counts(sdf, step="activity"), S.start_end_counts(pdf, step="activity"),
                "start_end_counts")


# ------------------------------------------------------------------------------------------
# Demo data: by=, sessions, service times, funnel, customer features
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(spark):
    datasets = pytest.importorskip("journey_analysis.datasets")
    d = datasets.make_demo(n_customers=600, seed=0)
    sdf = SP.to_spark(d.events, spark).persist()
    return d, sdf


def test_demo_steps_equal_pandas(demo):
    d, sdf = demo
    ev = d.events
    gap = 7 * 86400
    assert_same(SP.step_stats(sdf, by="channel", session_gap_s=gap),
                S.step_stats(ev, by="channel", session_gap_s=gap), "step_stats by channel, sessions")
    assert_same(SP.transitions(sdf, by="journey", time="waiting"),
                S.transitions(ev, by="journey", time="waiting"), "transitions waiting by journey")
    assert_same(SP.transitions(sdf, collapse_repeats=True, time="end_to_end", order="end"),
                S.transitions(ev, collapse_repeats=True, time="end_to_end", order="end"), "transitions end")
    assert_same(SP.variants(sdf, top=20, by="journey", session_gap_s=gap),
                S.variants(ev, top=20, by="journey", session_gap_s=gap), "variants")
    assert_same(SP.journey_durations(sdf, session_gap_s=gap), S.journey_durations(ev, session_gap_s=gap),
                "journey_durations sessions")
    cut = SP.cut_sessions(sdf, gap).select("row_id", "journey_id").toPandas().sort_values("row_id")
    assert cut["journey_id"].tolist() == S.cut_sessions(ev, gap).sort_values("row_id")["journey_id"].tolist()
    stages = list(pd.unique(ev.sort_values("timestamp")["stage"]))[:4]
    assert_same(SP.funnel(sdf, stages, by="channel"), S.funnel(ev, stages, by="channel"), "funnel by")


def test_stage_visits_and_journey_ends_equal_pandas(demo):
    """Time in a stage per visit, customers' stage time and terminal-stage completion: same on Spark."""
    d, sdf = demo
    ev = d.events.assign(segment=np.where(d.events["customer_id"].str[-1].isin(list("01234")), "x", "y"))
    ssdf = SP.to_spark(ev, sdf.sparkSession)
    exp = {"purchase": 48 * 3600.0, "support": 72 * 3600.0}
    assert_same(SP.stage_visits(ssdf, expected_s=exp), S.stage_visits(ev, expected_s=exp), "stage_visits")
    assert_same(SP.stage_visits(ssdf, by="segment"), S.stage_visits(ev, by="segment"), "stage_visits by")
    assert_same(SP.customer_stage_time(sdf), S.customer_stage_time(d.events), "customer_stage_time")
    kw = {"terminal": ["renewal"], "inactivity_gap_s": 90 * 86400.0}
    assert_same(SP.step_stats(ssdf, by="segment", **kw), S.step_stats(ev, by="segment", **kw), "step_stats terminal")


def test_segment_stage_tables_equal_pandas(demo):
    """The journey map's behaviour tables (all customers and per segment, a segment too small to table)."""
    d, sdf = demo
    ids = pd.Series(sorted(d.events["customer_id"].unique()))
    labels = pd.Series(np.where(ids.str[-1].isin(list("01234")), "x", "y"), index=ids.to_numpy())
    labels.iloc[:3] = "tiny"
    kw = {"overall": "all", "min_segment_customers": 4, "inactivity_gap_s": 90 * 86400.0,
          "as_of": d.events["timestamp"].max(), "terminal": ["renewal"],
          "expected_s": {"purchase": 48 * 3600.0, "support": 72 * 3600.0}, "mix": ("channel", "touchpoint")}
    ours, ref = SP.segment_stage_tables(sdf, "stage", labels, **kw), S.segment_stage_tables(d.events, "stage", labels, **kw)
    for name in ("segment_customers", "step_stats", "visits"):
        assert_same(ours[name], ref[name], name)
    key = ["segment", "stage"]  # Spark collects the shares in no particular order; the map merges them
    assert_same(ours["dwell_over"].sort_values(key, ignore_index=True), ref["dwell_over"].sort_values(key, ignore_index=True))
    assert list(ours["mix"]) == list(ref["mix"]) == ["channel", "touchpoint"]
    for col, counts in ref["mix"].items():
        key = ["segment", "stage", col]
        assert_same(ours["mix"][col].sort_values(key, ignore_index=True)[key + ["k"]],
                    counts.sort_values(key, ignore_index=True)[key + ["k"]], f"mix {col}")


def test_demo_customer_features_equal_pandas(demo):
    d, sdf = demo
    ours, ours_report = SG.customer_features(sdf, d.customers, d.feedback, outcome="churned")
    ref, ref_report = SG.customer_features(d.events, d.customers, d.feedback, outcome="churned")
    assert list(ours.index) == list(ref.index)
    assert_same(ours.reset_index(), ref.reset_index(), "customer_features")
    pd.testing.assert_frame_equal(ours_report, ref_report)


def test_segment_spark_assigns_everyone_like_predict(demo, spark):
    d, _ = demo
    feats, _ = SG.customer_features(d.events, d.customers, d.feedback, outcome="churned")
    num = feats.select_dtypes("number")
    fsdf = SP.to_spark(num.reset_index(), spark, add_row_id=False)
    seg, assigned = SG.segment_spark(fsdf, k=3, sample_size=400, random_state=0, n_stability=0)
    got = assigned.toPandas().set_index("customer_id")["segment"].reindex(num.index)
    assert got.notna().all() and len(got) == len(num)
    assert seg.sample_rows < len(num)
    # Spark SQL assignment == the fitted model's predict on every customer
    ref = seg.predict(num).to_numpy()
    assert "row_id" not in seg.feature_names
    assert (got.to_numpy() == ref).all()


# ------------------------------------------------------------------------------------------
# Small hand-made logs: ties, "NA" ids, errors, session helpers
# ------------------------------------------------------------------------------------------
def _tiny() -> pd.DataFrame:
    t = pd.Timestamp("2024-01-01", tz="UTC")
    return pd.DataFrame({
        "customer_id": ["NA", "NA", "NA", "b", "b", "c"],
        "stage": ["x", "y", "x", "y", "x", "x"],
        "timestamp": [t, t, t + pd.Timedelta(seconds=10), t, t + pd.Timedelta(seconds=5), t],
        "row_id": [1, 0, 2, 3, 4, 5],
    })


def test_ties_keep_row_order_and_na_ids(spark):
    ev = _tiny()
    sdf = SP.to_spark(ev, spark)
    tr = SP.transitions(sdf)
    # "NA" is an id; its tie at t is broken by row_id: y (row 0) then x (row 1)
    assert set(zip(tr.from_step, tr.to_step, tr["count"])) == {("y", "x", 2), ("x", "x", 1)}
    assert_same(tr, S.transitions(ev), "tiny transitions")
    v = SP.variants(sdf)
    assert v["variant"].tolist() == ["y -> x -> x", "x", "y -> x"] or set(v["variant"]) == {
        "y -> x -> x", "x", "y -> x"}
    assert_same(v, S.variants(ev), "tiny variants")
    st = SP.step_stats(sdf)
    assert_same(st, S.step_stats(ev), "tiny step_stats")
    x = st.set_index("stage").loc["x"]
    assert x["rework_customers"] == 1 and x["dwell_n"] == 1 and np.isnan(x["dwell_std_s"])


def test_missing_values_raise_journey_error(spark):
    ev = _tiny()
    ev["stage"] = ev["stage"].astype(object)
    ev.loc[2, "stage"] = None
    with pytest.raises(JourneyError, match="'stage' has missing values"):
        SP.step_stats(SP.to_spark(ev, spark))
    with pytest.raises(JourneyError, match="lack column"):
        SP.transitions(SP.to_spark(_tiny(), spark), step="touchpoint")


def test_parquet_directory_and_csv_reading(spark, tmp_path):
    ev = _tiny().assign(channel=["web", "web", "app", "app", "web", "app"])
    part = tmp_path / "lake"
    ev.to_parquet(part, partition_cols=["channel"])
    sdf = SP.read_events_spark(part, spark)
    assert set(sdf.columns) >= {"customer_id", "timestamp", "row_id", "channel", "stage"}
    assert_same(SP.transitions(sdf), S.transitions(ev), "parquet transitions")
    csv = tmp_path / "e.csv"
    ev.drop(columns="row_id").assign(timestamp=ev["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")) \
        .rename(columns={"customer_id": "case_id"}).to_csv(csv, index=False)
    cs = SP.read_events_spark(csv, spark)
    assert dict(cs.dtypes)["timestamp"] == "timestamp"
    c = cs.toPandas()  # Spark hands back naive wall times in the session time zone (UTC)
    assert c["row_id"].tolist() == list(range(6))
    assert c["customer_id"].tolist() == ev["customer_id"].tolist()  # "NA" kept as an id
    assert (c["timestamp"].dt.tz_localize("UTC") == ev["timestamp"]).all()
    with pytest.raises(JourneyError, match="not found"):
        SP.read_events_spark(tmp_path / "nope.parquet", spark)


def test_is_spark_frame_and_settings(spark):
    assert SP.is_spark_frame(spark.range(1))
    assert not SP.is_spark_frame(pd.DataFrame())
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert SP._spark_settings({"spark": {"spark.master": "local[1]"}}) == {"spark.master": "local[1]"}
    assert SP._spark_settings({"spark.executor.memory": "4g"}) == {"spark.executor.memory": "4g"}
    assert "pyspark" in sys.modules


def test_public_functions_dispatch_spark_frames(demo):
    """The engine is chosen by the input type: steps.* and segment.customer_features take a Spark
    DataFrame and return the same pandas results as for the pandas frame."""
    from journey_analysis import steps

    d, sdf = demo
    assert_same(steps.step_stats(sdf, by="channel"), steps.step_stats(d.events, by="channel"), "step_stats")
    assert_same(steps.variants(sdf, top=5), steps.variants(d.events, top=5), "variants")
    for keys in (["customer_id", "stage", "touchpoint"], ["customer_id", "channel"], "stage"):  # the drivers' tables
        assert_same(steps.count_by(sdf, keys, name="k"), steps.count_by(d.events, keys, name="k"), f"count_by {keys}")
    assert_same(steps.count_by(sdf, "stage", distinct="customer_id"),
                steps.count_by(d.events, "stage", distinct="customer_id"), "count_by distinct")
    ours, _ = SG.customer_features(sdf, d.customers, d.feedback, outcome="churned")
    ref, _ = SG.customer_features(d.events, d.customers, d.feedback, outcome="churned")
    assert_same(ours.reset_index(), ref.reset_index(), "customer_features")
