"""Tests for journey_analysis.steps: equality with pm4py 2.7.23 on real event logs, and hand-made logs."""
from __future__ import annotations

import json
from functools import lru_cache
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journey_analysis import steps as S
from journey_analysis.errors import JourneyError
from journey_analysis.eventlog import read_csv_log

DATA = Path(os.environ.get("JOURNEY_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")) / "eventlogs"
LOGS = ["receipt", "helpdesk", "bpic2012", "bpic2012_interval", "interval_synthetic"]
INTERVAL_LOGS = ["bpic2012_interval", "interval_synthetic"]
RTOL = 1e-9

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared event logs not found at {DATA}")


@lru_cache(maxsize=None)
def _log(name: str, interval: bool = False) -> pd.DataFrame:
    return read_csv_log(DATA / f"{name}.csv.gz", interval=interval)


def _ref(name: str, what: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{name}_pm4py_{what}", keep_default_na=False, dtype={"case_id": str})


def _num(s) -> np.ndarray:
    return pd.to_numeric(pd.Series(s).replace("", np.nan)).to_numpy(dtype=float)


def _assert_close(a, b, what: str):
    a, b = _num(a), _num(b)
    bad = ~np.isclose(a, b, rtol=RTOL, atol=0, equal_nan=True)
    assert not bad.any(), f"{what}: {bad.sum()} differ, e.g. {a[bad][:3]} vs {b[bad][:3]}"


def _assert_dfg(ref: pd.DataFrame, ours: pd.DataFrame):
    m = ref.merge(ours, left_on=["source", "target"], right_on=["from_step", "to_step"],
                  how="outer", indicator=True)
    assert (m["_merge"] == "both").all(), m.loc[m["_merge"] != "both", ["source", "target", "from_step", "to_step"]]
    for a, b in [("frequency", "count"), ("mean", "mean_s"), ("median", "median_s"), ("min", "min_s"),
                 ("max", "max_s"), ("sum", "sum_s"), ("stdev", "std_s")]:
        _assert_close(m[a], m[b], a)


# ------------------------------------------------------------------------------------------
# Against pm4py on real logs
# ------------------------------------------------------------------------------------------
@needs_data
@pytest.mark.parametrize("name", LOGS)
def test_transitions_equal_pm4py(name):
    if name in INTERVAL_LOGS:  # pm4py's interval DFG: next.start - this.complete
        ours = S.transitions(_log(name, True), step="activity", time="waiting")
    else:
        ours = S.transitions(_log(name), step="activity")
    _assert_dfg(_ref(name, "dfg_performance.csv"), ours)
    summary = json.loads((DATA / f"{name}_pm4py_summary.json").read_text())
    assert len(ours) == summary["dfg_edges"]
    assert ours["count"].sum() == summary["dfg_total_arcs"]


@needs_data
@pytest.mark.parametrize("name", INTERVAL_LOGS)
def test_interval_dfg_variants_equal_pm4py(name):
    ev = _log(name, True)
    _assert_dfg(_ref(name, "dfg_performance_waiting_clipped.csv"),
                S.transitions(ev, step="activity", time="waiting_clipped"))
    _assert_dfg(_ref(name, "dfg_performance_complete_to_complete.csv"),
                S.transitions(ev, step="activity", time="end_to_end", order="end"))
    # overlaps (next starts before this ends) are counted: an edge has some exactly when pm4py's
    # waiting-time minimum for it is negative
    tr = S.transitions(ev, step="activity", time="waiting")
    ref = _ref(name, "dfg_performance.csv")
    m = ref.merge(tr, left_on=["source", "target"], right_on=["from_step", "to_step"])
    assert len(m) == len(ref)
    assert ((m["overlaps"] > 0) == (_num(m["min"]) < 0)).all()
    assert m["overlaps"].sum() > 0


@needs_data
@pytest.mark.parametrize("name", LOGS)
def test_step_stats_equal_pm4py(name):
    interval = name in INTERVAL_LOGS
    ev = _log(name, interval)
    st = S.step_stats(ev, step="activity", order="end" if interval else "timestamp")
    ref = _ref(name, "activities.csv")
    m = ref.merge(st, on="activity", how="outer", indicator=True)
    assert (m["_merge"] == "both").all()
    assert (m["events_x"] == m["events_y"]).all()
    assert (m["cases"] == m["customers"]).all()
    assert (m["rework_cases"] == m["rework_customers"]).all()
    for what, col in (("start_activities.csv", "starts_here"), ("end_activities.csv", "ends_here")):
        r = _ref(name, what)
        mm = st[st[col] > 0].merge(r, on="activity", how="outer", indicator=True)
        assert (mm["_merge"] == "both").all(), what
        assert (mm[col] == mm["cases"]).all(), what
    se = S.start_end_counts(ev, step="activity", order="end" if interval else "timestamp")
    r = _ref(name, "start_activities.csv")
    assert dict(zip(se.loc[se.starts > 0, "activity"], se.loc[se.starts > 0, "starts"])) == \
        dict(zip(r["activity"], r["cases"]))
    summary = json.loads((DATA / f"{name}_pm4py_summary.json").read_text())
    assert st["events"].sum() == summary["events"]
    assert len(st) == summary["activities"]
    assert (st["starts_here"] > 0).sum() == summary["start_activities"]
    assert (st["ends_here"] > 0).sum() == summary["end_activities"]
    assert st["share_customers"].max() <= 1.0
    # dwell of a step = the time of the transitions leaving it
    tr = S.transitions(ev, step="activity", order="end" if interval else "timestamp")
    tot = tr.groupby("from_step")["sum_s"].sum()
    dw = st.set_index("activity")
    _assert_close((dw["dwell_mean_s"] * dw["dwell_n"]).loc[tot.index], tot, "dwell total")


@needs_data
@pytest.mark.parametrize("name", LOGS)
def test_variants_and_durations_equal_pm4py(name):
    ev = _log(name, name in INTERVAL_LOGS)
    # pm4py orders an interval log by its complete time for variants and case durations
    order = "end" if name in INTERVAL_LOGS else "timestamp"
    var = S.variants(ev, step="activity", order=order)
    ref = _ref(name, "variants.csv.gz")
    m = ref.merge(var, on="variant", how="outer", indicator=True)
    assert (m["_merge"] == "both").all(), m.loc[m["_merge"] != "both", "variant"].head()
    assert (m["length_x"] == m["length_y"]).all()
    assert (m["cases"] == m["customers"]).all()
    _assert_close(var["share"].sum(), 1.0, "share")
    summary = json.loads((DATA / f"{name}_pm4py_summary.json").read_text())
    assert len(var) == summary["variants"]

    du = S.journey_durations(ev, order=order)
    rd = _ref(name, "case_durations.csv.gz")
    m = rd.merge(du, left_on="case_id", right_on="customer_id", how="outer", indicator=True)
    assert (m["_merge"] == "both").all()
    _assert_close(m["duration_s_x"], m["duration_s_y"], "case duration")
    cd = summary["case_duration_s"]
    assert len(du) == cd["n"] == summary["cases"]
    for k in ("min", "max", "mean", "median"):
        _assert_close(getattr(du["duration_s"], k)(), cd[k], k)


@needs_data
@pytest.mark.parametrize("name", INTERVAL_LOGS)
def test_service_time_equal_pm4py(name):
    st = S.step_stats(_log(name, True), step="activity")
    ref = _ref(name, "service_time.csv")
    m = ref.merge(st, on="activity", how="outer", indicator=True)
    assert (m["_merge"] == "both").all()
    assert (m["events_x"] == m["service_n"]).all()
    for a in ("mean", "median", "min", "max", "sum"):
        _assert_close(m[a], m[f"service_{a}_s"], a)


@needs_data
def test_lifecycle_pairing_reproduces_interval_log():
    life = read_csv_log(DATA / "bpic2012_lifecycle.csv.gz")
    iv, orphans = S.pair_lifecycle(life, step="activity")
    ref = _log("bpic2012_interval", True)
    assert len(iv) == len(ref) == 164_506
    assert (iv["customer_id"].to_numpy() == ref["customer_id"].to_numpy()).all()
    assert (iv["activity"].to_numpy() == ref["activity"].to_numpy()).all()
    assert (iv["timestamp"].to_numpy() == ref["timestamp"].to_numpy()).all()
    assert (iv["end_timestamp"].to_numpy() == ref["end_timestamp"].to_numpy()).all()
    tot = orphans.drop(columns="activity").sum()
    assert tot["intervals"] == 164_506
    assert tot["complete_without_start"] == 164_506 - iv["paired"].sum()
    # every START is either paired with a COMPLETE or counted as an orphan
    n_start = (life["lifecycle"] == "START").sum()
    assert iv["paired"].sum() + tot["start_without_complete"] == n_start
    assert tot["other_lifecycle"] == 0


# ------------------------------------------------------------------------------------------
# Hand-made logs
# ------------------------------------------------------------------------------------------
def _ev(rows, tz="UTC") -> pd.DataFrame:
    """rows: (customer, stage, 'YYYY-mm-dd HH:MM[:SS]'[, end])"""
    df = pd.DataFrame([r[:3] for r in rows], columns=["customer_id", "stage", "timestamp"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], format="ISO8601").dt.tz_localize(tz)
    if len(rows[0]) > 3:
        df["end_timestamp"] = pd.to_datetime([r[3] for r in rows], format="ISO8601").tz_localize(tz)
    df["row_id"] = np.arange(len(df), dtype=np.int64)
    return df


@pytest.fixture
def tiny():
    return _ev([
        ("a", "look", "2024-01-01 10:00"), ("a", "buy", "2024-01-01 10:10"),
        ("a", "use", "2024-01-01 11:10"),
        ("b", "look", "2024-01-01 09:00"), ("b", "look", "2024-01-01 09:30"),
        ("b", "buy", "2024-01-01 10:30"),
        ("NA", "look", "2024-01-02 00:00"),  # "NA" is an id
        ("c", "look", "2024-01-01 12:00"), ("c", "use", "2024-01-01 12:00"),  # tie: file order
    ])


def test_tiny_step_stats(tiny):
    st = S.step_stats(tiny).set_index("stage")
    assert st.loc["look", "customers"] == 4 and st.loc["look", "events"] == 5
    assert st.loc["look", "rework_customers"] == 1
    assert st.loc["look", "share_customers"] == 1.0
    assert st.loc["buy", "share_customers"] == 0.5
    assert st.loc["look", "starts_here"] == 4
    assert st.loc["use", "ends_here"] == 2 and st.loc["buy", "ends_here"] == 1
    assert st.loc["look", "ends_here"] == 1  # the single-event "NA" customer
    # look dwell: a 600 s, b 1800 s and 3600 s, c 0 s (tie); NA none
    assert st.loc["look", "dwell_n"] == 4
    assert st.loc["look", "dwell_min_s"] == 0 and st.loc["look", "dwell_max_s"] == 3600
    assert st.loc["look", "dwell_median_s"] == (600 + 1800) / 2
    assert st.loc["look", "dwell_mean_s"] == (600 + 1800 + 3600) / 4
    assert np.isclose(st.loc["look", "dwell_p90_s"], pd.Series([0, 600, 1800, 3600]).quantile(0.9))
    assert np.isclose(st.loc["look", "dwell_std_s"], np.std([0, 600, 1800, 3600], ddof=1))
    assert st.loc["buy", "dwell_n"] == 1 and np.isnan(st.loc["buy", "dwell_std_s"])
    assert np.isnan(st.loc["use", "dwell_mean_s"])  # last steps only
    assert "service_n" not in st.columns


def test_tiny_unsorted_input_gives_same_result(tiny):
    shuffled = tiny.sample(frac=1, random_state=0)
    pd.testing.assert_frame_equal(S.step_stats(shuffled), S.step_stats(tiny))
    pd.testing.assert_frame_equal(S.transitions(shuffled), S.transitions(tiny))
    # without row_id the frame's order is the row order: ties then follow the frame
    no_id = tiny.drop(columns="row_id")
    pd.testing.assert_frame_equal(S.transitions(no_id), S.transitions(tiny))


def test_ties_keep_file_order(tiny):
    tr = S.transitions(tiny).set_index(["from_step", "to_step"])
    assert tr.loc[("look", "use"), "count"] == 1 and tr.loc[("look", "use"), "sum_s"] == 0
    swapped = tiny.copy()
    swapped.loc[[7, 8], "row_id"] = [8, 7]  # c's tie now reads use -> look
    tr2 = S.transitions(swapped).set_index(["from_step", "to_step"])
    assert ("use", "look") in tr2.index and ("look", "use") not in tr2.index


def test_tiny_transitions_and_self_loops(tiny):
    tr = S.transitions(tiny).set_index(["from_step", "to_step"])
    assert tr.loc[("look", "look"), "count"] == 1 and tr.loc[("look", "look"), "mean_s"] == 1800
    assert tr.loc[("look", "buy"), "count"] == 2 and tr.loc[("look", "buy"), "customers"] == 2
    assert tr.loc[("look", "buy"), "median_s"] == (600 + 3600) / 2
    assert tr["count"].sum() == 9 - 4  # events - journeys
    se = S.start_end_counts(tiny).set_index("stage")
    assert se.loc["look", "starts"] == 4 and se.loc["use", "ends"] == 2


def test_collapse_repeats_keeps_rework(tiny):
    st = S.step_stats(tiny, collapse_repeats=True).set_index("stage")
    assert st.loc["look", "events"] == 4 and st.loc["look", "repeat_events"] == 1
    assert st.loc["look", "rework_customers"] == 1  # still reported
    # b's look run lasts from 09:00 to buy at 10:30
    assert st.loc["look", "dwell_max_s"] == 5400
    tr = S.transitions(tiny, collapse_repeats=True)
    assert not ((tr.from_step == "look") & (tr.to_step == "look")).any()
    v = S.variants(tiny, collapse_repeats=True).set_index("variant")
    assert v.loc["look -> buy", "customers"] == 1 and v.loc["look -> buy -> use", "customers"] == 1


def test_variants_tiny(tiny):
    v = S.variants(tiny).set_index("variant")
    assert list(v.index) == ["look", "look -> buy -> use", "look -> look -> buy", "look -> use"]
    assert v.loc["look -> look -> buy", "has_loop"] and not v.loc["look -> buy -> use", "has_loop"]
    assert v.loc["look", "length"] == 1 and v.loc["look", "duration_mean_s"] == 0
    assert v["share"].sum() == 1.0 and v.loc["look -> buy -> use", "duration_mean_s"] == 4200
    assert len(S.variants(tiny, top=2)) == 2


def test_single_event_and_na_ids(tiny):
    du = S.journey_durations(tiny).set_index("customer_id")
    assert du.loc["NA", "duration_s"] == 0 and du.loc["NA", "events"] == 1
    assert du.loc["a", "duration_s"] == 4200
    bad = tiny.copy()
    bad.loc[2, "customer_id"] = None
    with pytest.raises(JourneyError, match="missing"):
        S.step_stats(bad)


def test_time_zones_are_instants():
    # the same instants written in two zones: order and durations follow UTC
    a = _ev([("x", "s1", "2024-03-01 10:00"), ("x", "s2", "2024-03-01 10:30")], tz="Europe/London")
    b = _ev([("x", "s1", "2024-03-01 11:00"), ("x", "s2", "2024-03-01 11:30")], tz="Europe/Paris")
    mixed = pd.concat([a.iloc[[1]], b.iloc[[0]]], ignore_index=True)  # s2 (London) first in file
    mixed["timestamp"] = pd.Series(list(mixed["timestamp"]), dtype=object)
    mixed["timestamp"] = pd.to_datetime(mixed["timestamp"], utc=True)
    tr = S.transitions(mixed)
    assert list(zip(tr.from_step, tr.to_step, tr.mean_s)) == [("s1", "s2", 1800.0)]
    # a non-UTC zone directly
    tr_paris = S.transitions(b)
    assert tr_paris["mean_s"].iloc[0] == 1800.0
    with pytest.raises(JourneyError, match="datetime"):
        S.step_stats(a.assign(timestamp=a["timestamp"].astype(str)))


def test_session_cut():
    ev = _ev([("u", "browse", "2024-01-01 10:00"), ("u", "cart", "2024-01-01 10:01:10"),
              ("u", "browse", "2024-01-08 10:00"), ("u", "cart", "2024-01-08 10:02:00"),
              ("v", "browse", "2024-01-01 00:00")])
    # per customer, browse -> cart is polluted by the 7-day gap
    tr = S.transitions(ev).set_index(["from_step", "to_step"])
    assert tr.loc[("cart", "browse"), "mean_s"] > 6 * 86400
    cut = S.cut_sessions(ev, gap_s=3600)
    assert list(cut["journey_id"]) == ["u|1", "u|1", "u|2", "u|2", "v|1"]
    assert list(cut.columns[:-1]) == list(ev.columns)
    tr2 = S.transitions(ev, session_gap_s=3600)
    assert list(zip(tr2.from_step, tr2.to_step, tr2["count"])) == [("browse", "cart", 2)]
    assert tr2["mean_s"].iloc[0] == 95.0
    pd.testing.assert_frame_equal(tr2, S.transitions(cut, case="journey_id"))
    du = S.journey_durations(ev, session_gap_s=3600)
    assert list(du["journey_id"]) == ["u|1", "u|2", "v|1"] and list(du["duration_s"]) == [70, 120, 0]
    st = S.step_stats(ev, session_gap_s=3600).set_index("stage")
    assert st.loc["browse", "customers"] == 3  # journeys


def test_in_progress_vs_drop_off():
    ev = _ev([("a", "apply", "2024-01-01"), ("a", "approve", "2024-01-03"),
              ("b", "apply", "2024-01-02"),                      # stopped long ago: drop-off
              ("c", "apply", "2024-01-09 12:00"),                # recent: in progress
              ("d", "apply", "2024-01-01"), ("d", "approve", "2024-01-10")])
    st = S.step_stats(ev, inactivity_gap_s=2 * 86400).set_index("stage")
    assert st.loc["apply", "ends_here"] == 2
    assert st.loc["apply", "in_progress"] == 1 and st.loc["apply", "drop_off"] == 1
    assert st.loc["approve", "in_progress"] == 1 and st.loc["approve", "drop_off"] == 1
    st2 = S.step_stats(ev, inactivity_gap_s=2 * 86400, as_of="2024-02-01").set_index("stage")
    assert st2["in_progress"].sum() == 0
    st3 = S.step_stats(ev).set_index("stage")  # no gap: every end is a drop-off
    assert (st3["drop_off"] == st3["ends_here"]).all()


def test_by_groups(tiny):
    ev = tiny.assign(channel=np.where(tiny.customer_id.isin(["a", "b"]), "web", "store"))
    st = S.step_stats(ev, by="channel")
    assert list(st.columns[:2]) == ["channel", "stage"]
    web = st[st.channel == "web"].set_index("stage")
    assert web.loc["look", "customers"] == 2 and web.loc["buy", "share_customers"] == 1.0
    tr = S.transitions(ev, by=["channel"])
    assert set(tr.channel) == {"web", "store"}
    assert tr.loc[tr.channel == "store", "count"].sum() == 1
    v = S.variants(ev, by="channel")
    assert v.groupby("channel")["share"].sum().tolist() == [1.0, 1.0]
    b = S.bottlenecks(ev, by="channel")
    assert set(b.kind) == {"step", "transition"} and b["rank_total"].min() == 1


def test_interval_service_waiting_overlaps():
    ev = _ev([("a", "call", "2024-01-01 10:00", "2024-01-01 10:20"),
              ("a", "email", "2024-01-01 10:10", "2024-01-01 10:15"),   # starts before call ends
              ("a", "visit", "2024-01-01 11:15", "2024-01-01 11:45")])
    st = S.step_stats(ev).set_index("stage")
    assert st.loc["call", "service_mean_s"] == 1200 and st.loc["visit", "service_sum_s"] == 1800
    w = S.transitions(ev, time="waiting").set_index(["from_step", "to_step"])
    assert w.loc[("call", "email"), "mean_s"] == -600 and w.loc[("call", "email"), "overlaps"] == 1
    assert w.loc[("email", "visit"), "mean_s"] == 3600 and w.loc[("email", "visit"), "overlaps"] == 0
    c = S.transitions(ev, time="waiting_clipped").set_index(["from_step", "to_step"])
    assert c.loc[("call", "email"), "mean_s"] == 0
    e = S.transitions(ev, time="end_to_end", order="end")
    assert list(zip(e.from_step, e.to_step)) == [("email", "call"), ("call", "visit")] or \
        set(zip(e.from_step, e.to_step)) == {("email", "call"), ("call", "visit")}
    with pytest.raises(JourneyError, match="interval"):
        S.transitions(ev.drop(columns="end_timestamp"), time="waiting")
    dur = ev.drop(columns="end_timestamp").assign(duration_s=[1200.0, 300.0, np.nan])
    st2 = S.step_stats(dur).set_index("stage")
    assert st2.loc["email", "service_mean_s"] == 300 and st2.loc["visit", "service_n"] == 0


def test_funnel_and_dropoffs():
    ev = _ev([("a", "look", "2024-01-01 10:00"), ("a", "cart", "2024-01-01 10:05"),
              ("a", "pay", "2024-01-01 10:15"),
              ("b", "look", "2024-01-01 10:00"), ("b", "help", "2024-01-01 10:01"),
              ("c", "cart", "2024-01-01 09:00"), ("c", "look", "2024-01-01 09:10"),  # cart before look
              ("c", "cart", "2024-01-02 09:10"),
              ("d", "look", "2024-01-01 10:00"), ("d", "cart", "2024-01-01 11:00")])
    f = S.funnel(ev, ["look", "cart", "pay"]).set_index("stage")
    assert f.loc["look", "entered"] == 4
    assert f.loc["cart", "entered"] == 3 and f.loc["pay", "entered"] == 1
    assert f.loc["look", "converted"] == 3 and f.loc["cart", "dropped"] == 2
    assert f.loc["cart", "conversion_from_start"] == 0.75
    assert np.isclose(f.loc["pay", "conversion_from_previous"], 1 / 3)
    # look -> cart: a 300 s, c 86400 s, d 3600 s
    assert f.loc["cart", "from_previous_median_s"] == 3600
    assert f.loc["pay", "from_start_mean_s"] == 900
    assert f.loc["look", "dropped_top_next"] == "help (1)"
    fw = S.funnel(ev, ["look", "cart", "pay"], within=7200).set_index("stage")
    assert fw.loc["cart", "entered"] == 2
    d = S.funnel_dropoffs(ev, ["look", "cart", "pay"])
    got = {(r.position, r.next_step): r.customers for r in d.itertuples()}
    assert got == {(1, "help"): 1, (2, "(end)"): 2}
    with pytest.raises(JourneyError, match="not found"):
        S.funnel(ev, ["look", "nope"])


def test_bottlenecks_rank_total_time(tiny):
    b = S.bottlenecks(tiny)
    steps = b[b.kind == "step"].set_index("from_step")
    assert steps.loc["look", "total_s"] == 600 + 1800 + 3600 + 0
    assert steps["rank_total"].tolist() == sorted(steps["rank_total"].tolist())
    tr = b[b.kind == "transition"]
    assert np.isclose(tr["total_s"].sum(), S.transitions(tiny)["sum_s"].sum())
    assert np.isclose(tr["share_total"].sum(), 1.0)


def test_pair_lifecycle_fifo_and_orphans():
    ev = _ev([("a", "w", "2024-01-01 10:00"), ("a", "w", "2024-01-01 10:01"),
              ("a", "w", "2024-01-01 10:02"), ("a", "w", "2024-01-01 10:05"),
              ("a", "w", "2024-01-01 10:09"), ("a", "w", "2024-01-01 10:10"),
              ("a", "x", "2024-01-01 10:11"), ("a", "w", "2024-01-01 10:12")])
    ev["lifecycle"] = ["schedule", "START", "START", "COMPLETE", "COMPLETE", "COMPLETE",
                       "complete", "START"]
    iv, orph = S.pair_lifecycle(ev)
    assert len(iv) == 4
    w = iv[iv.stage == "w"]
    # FIFO: first complete (10:05) takes the 10:01 start, second (10:09) the 10:02 start
    assert list(w["timestamp"].dt.strftime("%H:%M")) == ["10:01", "10:02", "10:10"]
    assert list(w["end_timestamp"].dt.strftime("%H:%M")) == ["10:05", "10:09", "10:10"]
    assert list(w["paired"]) == [True, True, False]
    assert w["schedule_timestamp"].iloc[0] == pd.Timestamp("2024-01-01 10:00", tz="UTC")
    assert w["schedule_timestamp"].iloc[1:].isna().all()
    o = orph.set_index("stage")
    assert o.loc["w", "complete_without_start"] == 1 and o.loc["w", "start_without_complete"] == 1
    assert o.loc["x", "complete_without_start"] == 1 and o.loc["w", "schedule_without_start"] == 0
    # paired intervals feed service times directly
    st = S.step_stats(iv).set_index("stage")
    assert st.loc["w", "service_max_s"] == 420


def test_step_tables_equal_separate_calls(tiny):
    ev = tiny.assign(channel=np.where(tiny.customer_id.isin(["a", "b"]), "web", "store"))
    t = S.step_tables(ev, by="channel", collapse_repeats=True)
    pd.testing.assert_frame_equal(t["step_stats"], S.step_stats(ev, by="channel", collapse_repeats=True))
    pd.testing.assert_frame_equal(t["transitions"], S.transitions(ev, by="channel", collapse_repeats=True))
    pd.testing.assert_frame_equal(t["variants"], S.variants(ev, by="channel", collapse_repeats=True))


def test_event_dwell_per_event_matches_step_stats():
    """Per-event dwell: next timestamp - this one within the customer (ties by row order), NaN last."""
    t = pd.Timestamp("2024-01-01", tz="UTC")
    ev = pd.DataFrame({"customer_id": ["B", "A", "A", "A", "B"],
                       "stage": ["x", "x", "y", "z", "y"],
                       "timestamp": [t, t, t + pd.Timedelta(60, "s"), t + pd.Timedelta(60, "s"), t + pd.Timedelta(30, "s")],
                       "row_id": [0, 1, 2, 3, 4]})
    d = S.event_dwell(ev).sort_index()
    np.testing.assert_array_equal(d["dwell_s"].to_numpy(), [30.0, 60.0, 0.0, np.nan, np.nan])
    assert d["next_step"].tolist()[:3] == ["y", "y", "z"] and d["next_step"].iloc[3:].isna().all()
    med = d.groupby("stage")["dwell_s"].median()
    st = S.step_stats(ev).set_index("stage")["dwell_median_s"]
    assert np.allclose(med.reindex(st.index).to_numpy(), st.to_numpy(), equal_nan=True)


def _segment_tables_by_separate_calls(ev, labels, min_n, **kw):
    """What steps.segment_stage_tables promises, from the public functions on the events and on the
    tabled segments' events (engines.pandas.attach_labels)."""
    from journey_analysis.engines import pandas as PE

    sizes = S.count_by(PE.attach_labels(ev, labels), "segment", distinct="customer_id")
    small = sizes.loc[sizes["n"] < min_n, "segment"]
    kept = labels[~labels.isin(small)]
    seg = PE.attach_labels(ev, kept)
    skw = {k: kw[k] for k in ("inactivity_gap_s", "as_of", "terminal")}
    st = pd.concat([S.step_stats(ev, **skw).assign(segment="all"), S.step_stats(seg, by="segment", **skw)],
                   ignore_index=True)
    vis = pd.concat([S.stage_visits(ev, expected_s=kw["expected_s"]).assign(segment="all"),
                     S.stage_visits(seg, by="segment", expected_s=kw["expected_s"])], ignore_index=True)
    over = S.dwell_share_over(ev, "stage", kw["expected_s"], kept, overall="all")
    mix = pd.concat([S.count_by(ev, ["stage", "channel"], name="k").assign(segment="all"),
                     S.count_by(seg, ["segment", "stage", "channel"], name="k")], ignore_index=True)
    return sizes, st, vis, over, mix[mix["channel"].notna()]


def test_segment_stage_tables_equal_separate_calls():
    """One preparation of the events for the map's behaviour lanes gives exactly the numbers of the
    separate calls: small segments left out, labels without events, customers without a label, a
    missing channel, rows in no particular order."""
    from journey_analysis import datasets

    d = datasets.make_demo(n_customers=400, seed=3)
    ev = d.events.sample(frac=1.0, random_state=1).reset_index(drop=True)  # unsorted, row_id kept
    ev.loc[ev.index[::17], "channel"] = None
    ids = pd.Series(sorted(ev["customer_id"].unique()))
    labels = pd.Series(np.where(ids.str[-1].isin(list("01234")), "x", "y"), index=ids.to_numpy(), name="segment")
    labels.iloc[10:13] = "tiny"  # three customers with events ...
    labels = pd.concat([labels.iloc[5:], pd.Series({"NOT-A-CUSTOMER": "tiny"})])  # ... one without; 5 unlabelled
    kw = {"inactivity_gap_s": 30 * 86400.0, "as_of": ev["timestamp"].max(), "terminal": ["renewal"],
          "expected_s": {"purchase": 48 * 3600.0, "support": 72 * 3600.0, "nowhere": 1.0}}
    min_n = 4  # "tiny" has 3 customers with events: not tabled
    t = S.segment_stage_tables(ev, "stage", labels, overall="all", min_segment_customers=min_n,
                               mix=("channel", "no such column"), **kw)
    sizes, st, vis, over, mix = _segment_tables_by_separate_calls(ev, labels, min_n, **kw)
    assert sizes.set_index("segment")["n"].get("tiny") == 3 and set(t["step_stats"]["segment"]) == {"all", "x", "y"}
    pd.testing.assert_frame_equal(t["segment_customers"], sizes)
    pd.testing.assert_frame_equal(t["step_stats"], st)
    pd.testing.assert_frame_equal(t["visits"], vis)
    pd.testing.assert_frame_equal(t["dwell_over"], over)
    assert list(t["mix"]) == ["channel"]
    key = ["segment", "stage", "channel"]
    pd.testing.assert_frame_equal(t["mix"]["channel"].sort_values(key, ignore_index=True)[key + ["k"]],
                                  mix.sort_values(key, ignore_index=True)[key + ["k"]])
    # no segment big enough: all customers only
    none = S.segment_stage_tables(ev, "stage", labels, overall="all", min_segment_customers=10**6)
    assert set(none["step_stats"]["segment"]) == {"all"} and len(none["segment_customers"]) == 3


@needs_data
@pytest.mark.parametrize("name", ["helpdesk", "bpic2012"])
def test_stage_dwell_summary_is_pandas_groupby_of_event_dwell(name):
    """Per step: distinct customers, dwell count, median and linear quartiles (pandas' groupby) of
    event_dwell, customers whose last event is there; steps in order of their first event; exact."""
    ev = _log(name)
    d = S.event_dwell(ev, "activity")
    g = d.groupby("activity", sort=False)
    ref = pd.DataFrame({"customers": g["customer_id"].nunique(), "dwell_n": g["dwell_s"].count(),
                        "dwell_median_s": g["dwell_s"].median(), "dwell_q25_s": g["dwell_s"].quantile(0.25),
                        "dwell_q75_s": g["dwell_s"].quantile(0.75)})
    ref["last_customers"] = d[d["dwell_s"].isna()].groupby("activity", sort=False)["customer_id"].nunique()
    pd.testing.assert_frame_equal(S.stage_dwell_summary(ev, "activity"), ref, check_exact=True)
