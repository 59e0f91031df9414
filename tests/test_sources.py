"""Sources as CX teams have them (journey_analysis.sources and the source keys of the config): tables with
a key, lists of tables with constant-or-column values, wide milestone tables (BPIC-2012 pivoted in a
fixture: durations against a direct pandas computation, blanks, out-of-order milestones), feedback
linked via another table, no phantom customers, outcome and rating values as exports write them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from journey_analysis.cli import main
from journey_analysis.config import load_config
from journey_analysis.errors import JourneyError
from journey_analysis.sources import gather, milestone_durations

from shapes import MILESTONES, bpic_wide


def write_cfg(tmp_path: Path, data: dict, stages=None, **extra) -> Path:
    cfg = {"name": "t", "objective": "test", "data": data, **extra}
    if stages is not None:
        cfg["stages"] = [{"name": s} for s in stages]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def csv(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ------------------------------------------------------------------------------------------------
# wide milestone tables (real data)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wide_bpic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wide")
    wide = bpic_wide()
    wide.to_csv(folder / "applications.csv", index=False)
    return folder, wide


def test_wide_milestones_become_events_with_durations_as_pandas_computes_them(wide_bpic):
    folder, wide = wide_bpic
    cfg = write_cfg(folder, {"events": {"path": "applications.csv", "id": "application_id",
                                        "milestones": {s: f"{s}_at" for s in MILESTONES}}}, stages=list(MILESTONES))
    g = gather(load_config(cfg))
    ev = g.events
    # a blank milestone is "not reached": one event per non-blank cell, minus the out-of-order ones
    q = g.quality.set_index(["check", "detail"])
    n_out = int(q.loc[("milestone_out_of_order", "finalized before accepted"), "rows"])
    assert n_out == 58                               # exactly the swapped rows
    reached = {s: int((wide[f"{s}_at"] != "").sum()) for s in MILESTONES}
    counts = ev["stage"].value_counts()
    assert counts["preaccepted"] == reached["preaccepted"]            # blanks are not events, not errors
    assert counts["finalized"] == reached["finalized"] - n_out        # out of order: left out, not re-sorted
    assert ev["customer_id"].nunique() == len(wide)
    # the swapped rows keep their other milestones, in journey order
    first_rows = [int(r) for r in q.loc[("milestone_out_of_order", "finalized before accepted"), "first_rows"].split(", ")]
    swapped_ids = wide.loc[[r - 1 for r in first_rows], "application_id"]
    for cid in swapped_ids:
        assert "finalized" not in ev.loc[ev["customer_id"] == cid, "stage"].tolist()
        assert "accepted" in ev.loc[ev["customer_id"] == cid, "stage"].tolist()

    # durations: the time at a stage = next milestone kept on the row - this one, computed directly
    t = {s: pd.to_datetime(wide[f"{s}_at"].replace("", None), utc=True, format="ISO8601") for s in MILESTONES}
    bad = t["finalized"] < t["accepted"]
    t["finalized"] = t["finalized"].mask(bad)
    direct = {}
    order = list(MILESTONES)
    for i, s in enumerate(order):
        nxt = pd.concat([t[x] for x in order[i + 1:]], axis=1).bfill(axis=1).iloc[:, 0] if i + 1 < len(order) \
            else pd.Series(pd.NaT, index=wide.index, dtype="datetime64[ns, UTC]")
        direct[s] = (nxt - t[s]).dt.total_seconds()
    ours = milestone_durations(wide, {s: f"{s}_at" for s in MILESTONES})
    for s in order:
        pd.testing.assert_series_equal(ours[f"{s}_s"], direct[s], check_names=False)
    # ... and the step statistics of the events say the same (every kept row in journey order)
    from journey_analysis.steps import event_dwell

    dw = event_dwell(ev, "stage").groupby("stage")["dwell_s"].median()
    for s in order:
        assert dw.get(s, np.nan) == pytest.approx(direct[s].median(), rel=1e-9, nan_ok=True)


def test_milestone_errors_name_the_file_and_column(tmp_path):
    p = csv(tmp_path, "orders.csv", "order_id,bought,paid\nA,2024-01-01T10:00:00Z,yesterday\nB,2024-01-02T10:00:00Z,\n")
    cfg = write_cfg(tmp_path, {"events": {"path": "orders.csv", "id": "order_id",
                                          "milestones": {"purchase": "bought", "payment": "paid"}}},
                    stages=["purchase", "payment"])
    with pytest.raises(JourneyError, match="'paid'.*yesterday") as e:
        gather(load_config(cfg))
    assert str(p) in str(e.value) and "data rows): 1" in str(e.value)
    cfg = write_cfg(tmp_path, {"events": {"path": "orders.csv", "id": "order_id",
                                          "milestones": {"purchase": "bought", "payment": "paid_at"}}},
                    stages=["purchase", "payment"])
    with pytest.raises(JourneyError, match="'paid_at'"):
        gather(load_config(cfg))
    cfg = write_cfg(tmp_path, {"events": {"path": "orders.csv", "id": "order_id",
                                          "milestones": {"purchase": "bought", "shipped": "paid"}}},
                    stages=["purchase", "payment"])
    with pytest.raises(JourneyError, match="milestones name stages that are not configured: shipped"):
        load_config(cfg)


# ------------------------------------------------------------------------------------------------
# tables with a key, several sources
# ------------------------------------------------------------------------------------------------
def test_table_id_becomes_customer_id_and_a_second_customer_id_is_an_error(tmp_path):
    csv(tmp_path, "orders.csv", "order_id,customer_id,stage,ts\nO1,C1,purchase,2024-01-01T00:00:00Z\n"
                                "O1,C1,delivered,2024-01-03T00:00:00Z\n")
    stages = ["purchase", "delivered"]
    cfg = write_cfg(tmp_path, {"events": {"path": "orders.csv", "id": "order_id", "columns": {"ts": "timestamp"}}},
                    stages=stages)
    with pytest.raises(JourneyError, match="already has a column 'customer_id'.*two") as e:
        gather(load_config(cfg))
    assert "columns: {customer_id: source_customer_id}" in str(e.value)
    cfg = write_cfg(tmp_path, {"events": {"path": "orders.csv", "id": "order_id",
                                          "columns": {"ts": "timestamp", "customer_id": "olist_customer_id"}}},
                    stages=stages)
    ev = gather(load_config(cfg)).events
    assert ev["customer_id"].tolist() == ["O1", "O1"] and ev["olist_customer_id"].tolist() == ["C1", "C1"]
    # the old way, a mapping onto an existing column, is an error too (it made two customer_id columns)
    cfg = write_cfg(tmp_path, {"events": "orders.csv", "columns": {"events": {"order_id": "customer_id",
                                                                               "ts": "timestamp"}}}, stages=stages)
    with pytest.raises(JourneyError, match="two columns called 'customer_id'"):
        gather(load_config(cfg))


def test_several_event_sources_are_unioned_with_constant_or_column_values(tmp_path):
    csv(tmp_path, "web.csv", "visitor,page,at\nC1,pricing,2024-01-01T10:00:00Z\nC2,pricing,2024-01-01T11:00:00Z\n")
    csv(tmp_path, "calls.csv", "caller,started,reason\nC1,2024-01-02T09:00:00Z,support\nC3,2024-01-02T09:30:00Z,sales\n")
    data = {"events": [
        {"path": "web.csv", "id": "visitor", "columns": {"at": "timestamp"}, "stage": "consideration",
         "channel": "web", "touchpoint": "page"},
        {"path": "calls.csv", "id": "caller", "columns": {"started": "timestamp"}, "stage": "reason",
         "channel": "phone", "source": "call centre"}]}
    cfg = write_cfg(tmp_path, data, stages=["consideration", "sales", "support"])
    g = gather(load_config(cfg))
    ev = g.events.sort_values("row_id")
    assert ev["stage"].tolist() == ["consideration", "consideration", "support", "sales"]   # constant, then column
    assert ev["channel"].tolist() == ["web", "web", "phone", "phone"]
    assert ev["touchpoint"].tolist()[:2] == ["pricing", "pricing"]
    assert ev["row_id"].tolist() == [0, 1, 2, 3]                      # one order: sources in config order
    assert [n["file"].split("/")[-1] for n in g.sources] == ["web.csv", "calls.csv"]
    assert g.sources[1]["stage"] == "column 'reason'" and g.sources[0]["stage"] == "constant 'consideration'"


def test_duplicate_header_and_nul_bytes_are_clear_errors(tmp_path):
    csv(tmp_path, "dup.csv", "customer_id,timestamp,stage,stage\nC1,2024-01-01T00:00:00Z,a,b\n")
    cfg = write_cfg(tmp_path, {"events": "dup.csv"}, stages=["a"])
    with pytest.raises(JourneyError, match="repeats column name.*'stage'"):
        gather(load_config(cfg))
    (tmp_path / "nul.csv").write_bytes(b"customer_id,timestamp,stage\nC1,2024-01-01T00:00:00Z,a\x00\n")
    cfg = write_cfg(tmp_path, {"events": "nul.csv"}, stages=["a"])
    with pytest.raises(JourneyError, match="NUL byte.*line 2"):
        gather(load_config(cfg))


# ------------------------------------------------------------------------------------------------
# feedback via another table, phantom customers
# ------------------------------------------------------------------------------------------------
def test_feedback_via_orders_and_no_phantom_customers(tmp_path):
    csv(tmp_path, "events.csv", "customer_id,timestamp,stage\nC1,2024-01-01T00:00:00Z,purchase\n"
                                "C2,2024-01-02T00:00:00Z,purchase\n")
    csv(tmp_path, "orders.csv", "order_id,buyer\nO1,C1\nO2,C2\nO3,C9\n")
    csv(tmp_path, "reviews.csv", "order_id,review_score,comment\nO1,5,great\nO2,2,slow\nO3,4,ok\nO4,1,never came\n")
    data = {"events": "events.csv",
            "feedback": {"path": "reviews.csv", "id": "order_id", "columns": {"review_score": "rating",
                                                                             "comment": "text"},
                         "rating_type": "stars", "via": {"path": "orders.csv", "id": "buyer"}}}
    cfg = write_cfg(tmp_path, data, stages=["purchase"], satisfaction={"rating_type": "stars", "min": 1, "max": 5})
    g = gather(load_config(cfg))
    fb = g.feedback
    assert fb["customer_id"].tolist() == ["C1", "C2"]                  # O3's customer C9 has no events
    q = g.quality.set_index("check")
    assert q.loc["via_unmatched", "rows"] == 1 and q.loc["via_unmatched", "first_rows"] == "4"   # O4
    assert q.loc["no_customer", "rows"] == 1
    assert fb["order_id"].tolist() == ["O1", "O2"] and fb["rating"].tolist() == [5.0, 2.0]


def test_events_of_ids_missing_from_the_customers_table_are_left_out(tmp_path):
    csv(tmp_path, "events.csv", "customer_id,timestamp,stage\nC1,2024-01-01T00:00:00Z,a\nC2,2024-01-02T00:00:00Z,a\n")
    csv(tmp_path, "customers.csv", "customer_id,plan\nC1,basic\n")
    g = gather(load_config(write_cfg(tmp_path, {"events": "events.csv", "customers": "customers.csv"}, stages=["a"])))
    assert g.events["customer_id"].tolist() == ["C1"]
    assert g.quality.set_index("check").loc["unknown_customer", "rows"] == 1


# ------------------------------------------------------------------------------------------------
# values as exports write them
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("values,good,expect_bad", [
    (["Yes", "No", "yes", ""], False, [1.0, 0.0, 1.0, None]),
    (["True", "False", "true", "False"], False, [1.0, 0.0, 1.0, 0.0]),
    (["1", "0", "0", "1"], 0, [1.0, 0.0, 0.0, 1.0]),
    (["renewed", "cancelled", "Renewed", "renewed"], "renewed", [0.0, 1.0, 0.0, 0.0]),
])
def test_outcome_values_as_exports_write_them(tmp_path, values, good, expect_bad):
    from journey_analysis.analyze import outcome_is_bad

    rows = "\n".join(f"C{i},{v}" for i, v in enumerate(values))
    csv(tmp_path, "customers.csv", "customer_id,left\n" + rows + "\n")
    cfg = write_cfg(tmp_path, {"customers": "customers.csv"}, outcome="left", outcome_good=good)
    g = gather(load_config(cfg))
    bad = outcome_is_bad(g.customers["left"], good)
    assert [None if pd.isna(v) else v for v in bad] == expect_bad


def test_outcome_third_value_and_unknown_good_value_are_errors(tmp_path):
    csv(tmp_path, "customers.csv", "customer_id,churn\nC1,yes\nC2,no\nC3,maybe\n")
    with pytest.raises(JourneyError, match="'maybe' is a third one") as e:
        gather(load_config(write_cfg(tmp_path, {"customers": "customers.csv"}, outcome="churn")))
    assert "data rows): 3" in str(e.value)
    csv(tmp_path, "customers.csv", "customer_id,status\nC1,active\nC2,lapsed\n")
    with pytest.raises(JourneyError, match="outcome_good 'renewed' is not a value.*'active', 'lapsed'"):
        gather(load_config(write_cfg(tmp_path, {"customers": "customers.csv"}, outcome="status",
                                     outcome_good="renewed")))


def test_ratings_of_another_type_than_configured_are_an_error_not_silently_missing(tmp_path):
    csv(tmp_path, "events.csv", "customer_id,timestamp,stage\nC1,2024-01-01T00:00:00Z,a\n")
    csv(tmp_path, "fb.csv", "customer_id,rating_type,rating,text\nC1,stars,4,good\nC1,stars,5,great\n")
    with pytest.raises(JourneyError, match="No rating in the feedback is of the configured type 'csat'.*'stars' \\(2 rows\\)") as e:
        gather(load_config(write_cfg(tmp_path, {"events": "events.csv", "feedback": "fb.csv"}, stages=["a"])))
    assert "rating_type: stars" in str(e.value)


def test_blank_numeric_cells_are_counted_per_column(tmp_path):
    csv(tmp_path, "customers.csv", "customer_id,minutes,calls\nC1,1.5,3\nC2,,4\nC3,,\n")
    g = gather(load_config(write_cfg(tmp_path, {"customers": "customers.csv"})))
    q = g.quality[g.quality["check"] == "blank_numeric"].set_index("detail")
    assert q.loc["minutes", "rows"] == 2 and q.loc["calls", "rows"] == 1 and q.loc["minutes", "first_rows"] == "2, 3"


def test_kpi_metric_names_are_checked_and_listed(tmp_path):
    csv(tmp_path, "events.csv", "customer_id,timestamp,stage\nC1,2024-01-01T00:00:00Z,a\nC1,2024-01-02T00:00:00Z,b\n")
    cfg = write_cfg(tmp_path, {"events": "events.csv"}, stages=["a", "b"], satisfaction={"rating_type": "stars"},
                    kpis=[{"stage": "a", "metric": "csat_mean", "min": 4}])
    rc = main(["validate", "--config", str(cfg)])
    assert rc == 1
    cfg = write_cfg(tmp_path, {"events": "events.csv"}, stages=["a", "b"], satisfaction={"rating_type": "stars"},
                    kpis=[{"stage": "a", "metric": "stars_mean", "min": 4}])
    assert main(["validate", "--config", str(cfg)]) == 0


def test_kpi_error_lists_the_valid_names(tmp_path, capsys):
    csv(tmp_path, "events.csv", "customer_id,timestamp,stage\nC1,2024-01-01T00:00:00Z,a\n")
    cfg = write_cfg(tmp_path, {"events": "events.csv"}, stages=["a"], satisfaction={"rating_type": "stars"},
                    kpis=[{"stage": "a", "metric": "csat_mean", "min": 4}])
    main(["validate", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert "'csat_mean'" in err and "stars_mean" in err and "dwell_median_h" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------
# config shapes
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data,words", [
    ({"customers": "c.csv"}, "no event log"),
    ({"events": "e.csv", "feedback": {"path": "f.csv", "id": "k", "via": "events"}}, "linked via: events"),
])
def test_spark_engine_refuses_shapes_it_cannot_run(tmp_path, data, words):
    cfg = write_cfg(tmp_path, data, stages=None if "events" not in data else ["a"], engine="spark")
    with pytest.raises(JourneyError, match=f"engine: spark cannot read this data shape: .*{words}"):
        load_config(cfg)


def _events_and_quality(cfg_path):
    from journey_analysis.engines import to_pandas

    g = gather(load_config(cfg_path))
    ev = to_pandas(g.events)
    cols = [c for c in ["row_id", "customer_id", "timestamp", "stage", "channel", "source"] if c in ev.columns]
    ev = ev[cols].sort_values("row_id").reset_index(drop=True)
    ev["timestamp"] = pd.to_datetime(ev["timestamp"], utc=True).astype("datetime64[us, UTC]")
    ev = ev.astype({c: str for c in cols if c not in ("row_id", "timestamp")}).astype({"row_id": "int64"})
    return ev, g.quality.set_index("check")["rows"].to_dict()


def test_wide_tables_and_several_sources_run_on_spark_as_on_pandas(tmp_path):
    """Shapes the Spark loader does not read itself (a wide milestone table, a list of tables with a
    constant channel) are shaped by the sources layer and handed to Spark: same events, same quality log."""
    pytest.importorskip("pyspark")
    from shapes import receipt_two_sources

    spark = {"spark.master": "local[2]", "spark.sql.shuffle.partitions": "2"}
    bpic_wide(n_cases=600, n_blank=20, n_swap=15).to_csv(tmp_path / "applications.csv", index=False)
    wide = {"events": {"path": "applications.csv", "id": "application_id",
                       "milestones": {s: f"{s}_at" for s in MILESTONES}}}
    receipt_two_sources(tmp_path, n_cases=80)
    two = {"events": [
        {"path": "front_office.csv", "id": "application", "columns": {"logged_at": "timestamp"}, "stage": "step"},
        {"path": "back_office.csv", "id": "case_ref", "columns": {"done_at": "timestamp"}, "stage": "task",
         "channel": "back office"}], "duplicates": "keep"}
    for name, data, stages in [("wide", wide, list(MILESTONES)), ("two", two, None)]:
        folder = tmp_path / name
        folder.mkdir()
        data = {k: v for k, v in data.items()}
        for t in ([data["events"]] if isinstance(data["events"], dict) else data["events"]):
            t["path"] = str(tmp_path / t["path"])
        stages = stages or sorted(pd.read_csv(tmp_path / "front_office.csv")["step"].unique()) + sorted(
            pd.read_csv(tmp_path / "back_office.csv")["task"].unique())
        pd_ev, pd_q = _events_and_quality(write_cfg(folder, data, stages=stages))
        sp_ev, sp_q = _events_and_quality(write_cfg(folder, data, stages=stages, engine="spark", spark=spark))
        pd.testing.assert_frame_equal(pd_ev, sp_ev)
        assert pd_q == sp_q, name
        if name == "wide":
            assert pd_q["milestone_out_of_order"] > 0


def test_config_needs_some_data_and_stages_with_events(tmp_path):
    with pytest.raises(JourneyError, match="no data: give at least one of events, customers, feedback"):
        load_config(write_cfg(tmp_path, {}))
    with pytest.raises(JourneyError, match="stages: an event log needs its stages"):
        load_config(write_cfg(tmp_path, {"events": "e.csv"}))
    with pytest.raises(JourneyError, match="only an events table can be wide"):
        load_config(write_cfg(tmp_path, {"customers": {"path": "c.csv", "milestones": {"a": "t"}}}))
    cfg = load_config(write_cfg(tmp_path, {"customers": {"path": "c.csv", "id": "rownames"}}))
    assert cfg.stages == () and cfg.data.tables("customers")[0].path == (tmp_path / "c.csv").resolve()


def test_a_table_with_a_key_reads_the_same_on_spark_as_on_pandas(tmp_path):
    pytest.importorskip("pyspark")
    from journey_analysis.engines import spark as SP

    from shapes import helpdesk_head

    helpdesk_head(tmp_path, 1200)
    table = {"path": "helpdesk.csv", "id": "ticket", "columns": {"case_id": "ticket", "activity": "stage"}}
    stages = ["Assign seriousness", "Take in charge ticket", "Resolve ticket", "Closed"]
    pandas_run = gather(load_config(write_cfg(tmp_path, {"events": table}, stages=stages)))
    cfg = load_config(write_cfg(tmp_path, {"events": table}, stages=stages, engine="spark",
                                spark={"spark.master": "local[2]", "spark.sql.shuffle.partitions": "2"}))
    spark_run = gather(cfg)
    ours = spark_run.events.toPandas()
    cols = ["row_id", "customer_id", "timestamp", "stage", "resource"]
    a = pandas_run.events[cols].sort_values("row_id").reset_index(drop=True)
    b = ours[cols].sort_values("row_id").reset_index(drop=True)
    b["timestamp"] = pd.to_datetime(b["timestamp"], utc=True).astype(a["timestamp"].dtype)
    b["row_id"] = b["row_id"].astype("int64")
    pd.testing.assert_frame_equal(a.astype({"customer_id": str, "stage": str, "resource": str}),
                                  b.astype({"customer_id": str, "stage": str, "resource": str}))
    pq = pandas_run.quality.set_index("check")["rows"].to_dict()
    sq = spark_run.quality.set_index("check")["rows"].to_dict()
    assert pq == sq and pq["unknown_stage"] > 0
    # a source column already called customer_id is refused on Spark too
    csv(tmp_path, "two.csv", "ticket,customer_id,stage,timestamp\nT1,C1,Closed,2024-01-01T00:00:00Z\n")
    cfg = load_config(write_cfg(tmp_path, {"events": {"path": "two.csv", "id": "ticket"}}, stages=stages,
                                engine="spark", spark={"spark.master": "local[2]"}))
    with pytest.raises(JourneyError, match="already has a column 'customer_id'"):
        gather(cfg)


def test_validate_refuses_what_the_run_would_refuse_in_segmentation(tmp_path, capsys):
    csv(tmp_path, "events.csv", "customer_id,timestamp,stage\nC1,2024-01-01T00:00:00Z,a\nC2,2024-01-02T00:00:00Z,a\n")
    cfg = write_cfg(tmp_path, {"events": "events.csv"}, stages=["a"], segmentation={"features": ["no_such_feature"]})
    assert main(["validate", "--config", str(cfg)]) == 1
    assert "segmentation.features names 'no_such_feature'" in capsys.readouterr().err
    cfg = write_cfg(tmp_path, {"events": "events.csv"}, stages=["a"], segmentation={"population": "purchasers"})
    assert main(["validate", "--config", str(cfg)]) == 1
    assert "no event is at stage 'purchase'" in capsys.readouterr().err


def test_several_feedback_sources_union_with_unique_ids(tmp_path):
    csv(tmp_path, "events.csv", "customer_id,timestamp,stage\nC1,2024-01-01T00:00:00Z,a\nC2,2024-01-02T00:00:00Z,a\n")
    csv(tmp_path, "survey.csv", "who,score,said\nC1,4,fine\nC2,2,slow\n")
    csv(tmp_path, "chats.csv", "customer,message,at\nC2,where is my order,2024-01-03T00:00:00Z\n")
    data = {"events": "events.csv", "feedback": [
        {"path": "survey.csv", "id": "who", "columns": {"score": "rating", "said": "text"}, "source": "survey",
         "rating_type": "csat"},
        {"path": "chats.csv", "id": "customer", "columns": {"message": "text", "at": "timestamp"}, "source": "chat"}]}
    fb = gather(load_config(write_cfg(tmp_path, data, stages=["a"]))).feedback
    assert fb["source"].tolist() == ["survey", "survey", "chat"] and fb["feedback_id"].is_unique
    assert fb["rating"].tolist()[:2] == [4.0, 2.0]
    assert fb["stage"].tolist() == [None, None, "a"]       # the chat has a time, so it is linked; the survey not
