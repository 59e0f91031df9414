"""Tests for journey_analysis.journey_map.build_map: hand-made logs, the demo data and a real event log."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journey_analysis.config import DEMO_CONFIG, RunConfig, load_config
from journey_analysis.errors import JourneyError
from journey_analysis.journey_map import ALL, build_map, map_segment

SHARED = Path(os.environ.get("JOURNEY_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
HELPDESK = SHARED / "eventlogs" / "helpdesk.csv.gz"


def _cfg(stages, **kw):
    return RunConfig(name="t", objective="Make it better", data={"events": "/tmp/none.csv"},
                     stages=[s if isinstance(s, dict) else {"name": s} for s in stages], **kw)


def _ts(*hours):
    return [pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=h) for h in hours]


@pytest.fixture
def tiny():
    # customer A: a(0) b(2) b(5) c(6); B: a(0) b(10) (drops at b); C: a(0) (drops at a)
    ev = pd.DataFrame({
        "customer_id": ["A", "A", "A", "A", "B", "B", "NA"],
        "timestamp": _ts(0, 2, 5, 6, 0, 10, 0),
        "stage": ["a", "b", "b", "c", "a", "b", "a"],
        "channel": ["web", "phone", "phone", "web", "web", "web", "store"],
    })
    ev["row_id"] = np.arange(len(ev))
    cfg = _cfg([{"name": "a"}, {"name": "b", "expected_max_duration_h": 2, "target_satisfaction": 4,
                                "expectation": "quick", "deliverables": ["call back"]}, {"name": "c"}])
    return ev.sample(frac=1, random_state=1), cfg  # shuffled: order must come from (customer, timestamp, row_id)


def test_tiny_behaviour_by_hand(tiny):
    ev, cfg = tiny
    m = build_map(ev, None, None, cfg).set_index("stage")
    assert list(m.index) == ["a", "b", "c"] and (m["segment"] == ALL).all()
    assert m["customers"].tolist() == [3, 2, 1]
    assert m.loc["a", "share_customers"] == 1.0 and m.loc["c", "share_customers"] == pytest.approx(1 / 3)
    # drop-off: NA ends at a (1 of 3); B ends at b (1 of 2); c is the last stage: completion, not drop-off
    assert m.loc["a", "drop_off"] == pytest.approx(1 / 3)
    assert m.loc["b", "drop_off"] == pytest.approx(1 / 2)
    assert m.loc["c", "drop_off"] == 0 and m.loc["c", "completed"] == 1
    # dwell at b: A 3 h (b->b) and 1 h (b->c); B's b is last -> none
    assert m.loc["b", "dwell_n"] == 2
    assert m.loc["b", "dwell_median_h"] == pytest.approx(2.0)
    assert m.loc["b", "dwell_min_s"] == 3600 and m.loc["b", "dwell_max_s"] == 3 * 3600
    assert m.loc["a", "dwell_median_h"] == pytest.approx(6.0)  # A: 2 h, B: 10 h
    # A's two events at b are one visit: several events, not rework (rework = coming back after leaving)
    assert m.loc["b", "several_events_customers"] == 1 and m.loc["b", "rework_customers"] == 0
    assert m.loc["b", "visits"] == 2
    # time in the stage per visit: A 2 h -> c at 6 h = 4 h; B's visit is its journey's last: 10 h -> 10 h = 0
    assert m.loc["b", "stage_time_n"] == 2 and m.loc["b", "stage_time_max_h"] == pytest.approx(4.0)
    assert m.loc["b", "stage_time_median_h"] == pytest.approx(2.0) and m.loc["b", "stage_time_min_s"] == 0
    assert m.loc["b", "stage_time_share_over_expected"] == pytest.approx(0.5)
    assert m.loc["b", "channels"] == "phone 67%, web 33%"
    # expectations are from the config and marked as such; the gap is median - expected
    assert m.loc["b", "expectation"] == "quick" and m.loc["b", "deliverables"] == "call back"
    assert m.loc["b", "expectation_source"] == "config"
    assert m.loc["b", "duration_gap_h"] == pytest.approx(0.0)
    assert m.loc["b", "dwell_share_over_expected"] == pytest.approx(0.5)
    assert "no feedback" in m.loc["b", "missing"]
    assert m["low_confidence"].all() and "customers n=3 < 30" in m.loc["a", "low_confidence_reasons"]


def test_tiny_segments_and_feedback(tiny):
    ev, cfg = tiny
    seg = pd.Series({"A": "loyal", "B": "new", "NA": "new"})
    fb = pd.DataFrame({
        "feedback_id": ["1", "2", "3", "4"], "customer_id": ["A", "B", None, "B"], "stage": ["b", "b", "b", "a"],
        "rating_type": ["csat", "csat", "csat", "nps"], "rating": [2.0, 4.0, 3.0, 9.0],
        "text": ["slow, mail me at jo@example.com please", "fine thanks, all good", "", "great start"],
        "sentiment": [-0.6, 0.5, np.nan, 0.8],
    })
    m = build_map(ev, fb, seg, cfg)
    assert m["segment"].drop_duplicates().tolist() == [ALL, "loyal", "new"]
    allb = m[(m.segment == ALL) & (m.stage == "b")].iloc[0]
    assert allb["satisfaction_n"] == 3 and allb["satisfaction_mean"] == pytest.approx(3.0)  # nps 9 not on csat
    assert allb["satisfaction_ci_low"] < 3.0 < allb["satisfaction_ci_high"]
    assert allb["sentiment_n"] == 2 and allb["sentiment_share_negative"] == pytest.approx(0.5)
    assert allb["satisfaction_gap"] == pytest.approx(-1.0)
    assert all("@" not in q for q in allb["quotes"])  # quotes are redacted
    newb = m[(m.segment == "new") & (m.stage == "b")].iloc[0]
    assert newb["customers"] == 1 and newb["segment_customers"] == 2 and newb["satisfaction_mean"] == 4.0
    a_all = m[(m.segment == ALL) & (m.stage == "a")].iloc[0]
    assert "no csat ratings" in a_all["missing"]
    c_all = m[(m.segment == ALL) & (m.stage == "c")].iloc[0]
    assert "no feedback at this stage" in c_all["missing"] and c_all["dwell_n"] == 0


def test_open_journeys_are_in_progress_not_drop_off(tiny):
    ev, cfg = tiny
    # extract end = 10 h (B's last event); with a 5 h inactivity gap B (ends at b, 10 h) may still go on;
    # A reached c (the journey's end: no stage is marked terminal, so the last one is) and is complete;
    # NA (ends at a, 0 h) has dropped off
    m = build_map(ev, None, None, cfg, inactivity_gap_h=5).set_index("stage")
    assert m["ends_here"].tolist() == [1, 1, 1] and m["in_progress_here"].tolist() == [0, 1, 0]
    assert m.loc["a", "drop_off"] == pytest.approx(1 / 3) and m.loc["b", "drop_off"] == 0
    assert m.loc["c", "drop_off"] == 0 and m.loc["c", "completed"] == 1
    # config.session_gap_h is the default gap; as_of moves the extract end
    cfg_gap = cfg.model_copy(update={"session_gap_h": 5})
    assert build_map(ev, None, None, cfg_gap).set_index("stage").loc["b", "in_progress_here"] == 1
    late = build_map(ev, None, None, cfg, inactivity_gap_h=5, as_of=pd.Timestamp("2024-01-02", tz="UTC"))
    assert late["in_progress_here"].sum() == 0 and late.set_index("stage").loc["b", "drop_off"] == 0.5


def test_terminal_stage_is_completion_not_drop_off(tiny):
    ev, _ = tiny
    # b is where a journey is complete: B (ends at b) and A (reached b, ends at c) are complete; only NA drops
    cfg = _cfg(["a", {"name": "b", "terminal": True}, "c"])
    m = build_map(ev, None, None, cfg, inactivity_gap_h=5).set_index("stage")
    assert m["completed"].tolist() == [0, 1, 1] and m["drop_off_customers"].tolist() == [1, 0, 0]
    assert m["in_progress_here"].sum() == 0 and m["terminal"].tolist() == [False, True, False]
    # customers whose data ends mid-journey, within the gap of the extract's end: in progress, not drop-off
    m2 = build_map(ev, None, None, _cfg(["a", "b", {"name": "c", "terminal": True}]), inactivity_gap_h=5,
                   as_of=pd.Timestamp("2024-01-01 12:00", tz="UTC")).set_index("stage")
    assert m2.loc["b", "in_progress_here"] == 1 and m2.loc["b", "drop_off_customers"] == 0
    assert m2.loc["a", "drop_off_customers"] == 1 and m2.loc["c", "completed"] == 1


def test_validation_flags_rows_to_look_at_not_every_row(tiny):
    ev, cfg = tiny
    m = build_map(ev.assign(stage=ev["stage"].replace({"c": "zz"})), None, None, cfg).set_index("stage")
    # every row misses feedback (the data set has none): that is not a reason to look at each row
    assert "no feedback" in m.loc["a", "missing"] and not m.loc["a", "needs_review"]
    assert m.loc["c", "needs_review"] and "no customer reached" in m.loc["c", "review_reasons"]
    assert m.loc["zz", "needs_review"] and "not in the config" in m.loc["zz", "review_reasons"]
    # b: median 2 h on 2 visits, not over its 2 h expectation: nothing to look at
    assert not m.loc["b", "needs_review"]


def test_segments_table_and_errors(tiny):
    ev, cfg = tiny
    table = pd.DataFrame({"customer_id": ["A", "B"], "segment": [0, 1], "segment_name": ["x", "y"]})
    m = build_map(ev, None, table, cfg)
    assert set(m["segment"]) == {ALL, "x", "y"}
    y = map_segment(m.iloc[::-1], "y")  # one segment, back in stage order
    assert y["stage"].tolist() == ["a", "b", "c"] and y["customers"].tolist() == [1, 1, 0]
    with pytest.raises(JourneyError, match="no segment 'z'"):
        map_segment(m, "z")
    with pytest.raises(JourneyError, match="not a journey map"):
        map_segment(m.drop(columns="segment"))
    with pytest.raises(JourneyError, match="no column 'stage'"):
        build_map(ev.drop(columns="stage"), None, None, cfg)
    with pytest.raises(JourneyError, match="All customers"):
        build_map(ev, None, pd.Series({"A": ALL}), cfg)


@pytest.mark.skipif(not HELPDESK.exists(), reason=f"shared event logs not found at {HELPDESK.parent}")
def test_helpdesk_behaviour_only():
    from journey_analysis.gather import load_events

    ev = load_events(HELPDESK, duplicates="keep")
    acts = pd.read_csv(HELPDESK.parent / "helpdesk_pm4py_activities.csv").set_index("activity")
    order = ["Assign seriousness", "Take in charge ticket", "Wait", "Resolve ticket", "Closed"]
    cfg = RunConfig(
        name="helpdesk", objective="Resolve tickets faster", data={"events": HELPDESK}, step="stage",
        stages=[{"name": a, "terminal": a == "Closed"} for a in order])
    m = build_map(ev, None, None, cfg).set_index("stage")
    assert list(m.index[:5]) == order and set(m.index) == set(acts.index)
    assert (m.loc[order, "configured"]).all() and not m.drop(index=order)["configured"].any()
    # behaviour equals pm4py: customers reaching each step and rework
    assert (m["customers"] == acts["cases"].reindex(m.index)).all()
    assert (m["several_events_customers"] == acts["rework_cases"].reindex(m.index)).all()
    assert (m["rework_customers"] <= m["several_events_customers"]).all()
    assert m["segment_customers"].iloc[0] == 4580
    # Closed is where a ticket's journey is complete: no drop-off there, and tickets that were closed and
    # then had one more event are complete too
    assert m.loc["Closed", "drop_off_customers"] == 0 and m.loc["Closed", "completed"] == m.loc["Closed", "ends_here"]
    assert m["completed"].sum() == ev.groupby("customer_id")["stage"].agg(lambda s: (s == "Closed").any()).sum()
    assert m["drop_off_customers"].sum() + m["completed"].sum() == 4580
    # few rows need a second look: the unconfigured steps reached by at least 5% of tickets
    flagged = set(m.index[m["needs_review"]])
    assert flagged == set(m.index[~m["configured"] & (m["share_customers"] >= 0.05)])
    assert (m["dwell_n"] > 0).all() and np.isfinite(m["dwell_median_h"]).all()
    # and it says what is missing
    assert m["missing"].str.contains("no feedback at this stage").all()
    assert m["missing"].str.contains("no service durations").all()
    assert m["satisfaction_mean"].isna().all() and (m["feedback_n"] == 0).all()


def test_demo_map_numbers():
    from journey_analysis.datasets import make_demo

    cfg = load_config(DEMO_CONFIG)
    d = make_demo(600, seed=3)
    fb = d.feedback.copy()
    fb["sentiment"] = np.where(fb["rating"] >= 4, 0.5, -0.5)  # stand-in scores: this test checks the plumbing
    m = build_map(d.events, fb, None, cfg).set_index("stage")
    assert list(m.index) == cfg.stage_names
    on = fb[(fb.stage == "onboarding") & (fb.rating_type == "csat")]["rating"].dropna()
    assert m.loc["onboarding", "satisfaction_mean"] == pytest.approx(on.mean())
    assert m.loc["onboarding", "satisfaction_n"] == len(on)
    assert m.loc["onboarding", "csat_mean"] == pytest.approx(on.mean())
    reach = d.events.groupby("stage")["customer_id"].nunique()
    assert (m["customers"] == reach.reindex(m.index)).all()
    assert m.loc["purchase", "expected_max_duration_h"] == 48 and m.loc["purchase", "duration_gap_h"] > 0


def test_map_equals_step_stats_exactly():
    """One source of step statistics: the map's behaviour columns are steps.step_stats, for all and by segment."""
    from journey_analysis import steps
    from journey_analysis.datasets import make_demo

    cfg = load_config(DEMO_CONFIG)
    d = make_demo(600, seed=3)
    names = d.truth["segment_names"]
    seg = pd.Series(d.truth["customer_segment"]).map(lambda i: names[i])
    m = build_map(d.events, None, seg, cfg)
    ref = steps.step_stats(d.events, step="stage").set_index("stage")
    allm = m[m.segment == ALL].set_index("stage").loc[ref.index]
    for col in ("customers", "dwell_median_s", "dwell_max_s"):
        assert allm[col].tolist() == ref[col].tolist(), col  # exactly, not approximately
    assert allm["several_events_customers"].tolist() == ref["rework_customers"].tolist()
    for col in ("share_customers", "ends_here", "dwell_n", "dwell_min_s", "dwell_mean_s",
                "dwell_p90_s", "dwell_std_s", "service_median_s", "service_p90_s"):
        assert np.array_equal(allm[col].to_numpy(float), ref[col].to_numpy(float), equal_nan=True), col
    # journey ends with the config's terminal stage and inactivity gap: the same as steps'
    ends = steps.step_stats(d.events, step="stage", terminal=cfg.terminal_stages,
                            inactivity_gap_s=cfg.session_gap_h * 3600).set_index("stage").loc[ref.index]
    for a, b in (("drop_off_customers", "drop_off"), ("completed", "completed"), ("in_progress_here", "in_progress")):
        assert allm[a].tolist() == ends[b].tolist(), a
    assert allm.loc["renewal", "completed"] == allm.loc["renewal", "ends_here"] > 0
    by = steps.step_stats(d.events.assign(segment=d.events["customer_id"].map(seg)), step="stage", by="segment")
    segm = m[m.segment != ALL].merge(by, on=["segment", "stage"], suffixes=("", "_steps"))
    assert len(segm) == len(by)
    for col in ("customers", "share_customers", "dwell_median_s", "dwell_max_s", "service_mean_s"):
        assert np.array_equal(segm[col].to_numpy(float), segm[f"{col}_steps"].to_numpy(float), equal_nan=True), col


def test_finding_quotes_lead_on_pain_points_and_the_negative_moment_of_truth():
    """Issue 14, item 5 on the map itself: a pain point (rank 1-3 of its segment) or the negative moment of
    truth shows first the negative quote about its top negative theme; other stages keep their quotes."""
    from journey_analysis.journey_map import lead_with_finding_quotes

    m = pd.DataFrame({"segment": [ALL] * 4 + ["b"] * 4, "stage": ["s1", "s2", "s3", "s4"] * 2,
                      "quotes": [["typical 1", "neg 1"], ["typical 2"], ["typical 3"], []] * 2,
                      "negative_theme_quote": ["neg 1", "neg 2", None, "neg 4"] * 2})
    m["quote"] = [q[0] if q else None for q in m["quotes"]]
    pain = pd.DataFrame({"segment": ALL, "stage": ["s1", "s3", "s2", "s4"], "rank": [1, 2, 3, 4]})
    drivers = pd.DataFrame({"role": ["driver", "driver"], "significant": [True, True], "rank": [1, 2],
                            "stage": ["s4", "s2"], "worse_raises_bad": [True, True]})
    out = lead_with_finding_quotes(m, pain, drivers)
    a = out[out.segment == ALL].set_index("stage")
    assert list(a.loc["s1", "quotes"]) == ["neg 1", "typical 1"]  # not repeated, same length
    assert list(a.loc["s2", "quotes"]) == ["neg 2"] and a.loc["s2", "quote"] == "neg 2"  # pain #3
    assert list(a.loc["s3", "quotes"]) == ["typical 3"]  # pain #2 without a negative theme quote
    assert list(a.loc["s4", "quotes"]) == ["neg 4"]  # the negative moment of truth (every segment)
    b = out[out.segment == "b"].set_index("stage")
    assert list(b.loc["s1", "quotes"]) == ["typical 1", "neg 1"]  # pain points of All customers only
    assert list(b.loc["s4", "quotes"]) == ["neg 4"]
    assert out.attrs["finding_quotes"] == 4 and list(m.loc[0, "quotes"]) == ["typical 1", "neg 1"]
    positive = drivers.assign(worse_raises_bad=False)
    assert lead_with_finding_quotes(m, None, positive).attrs["finding_quotes"] == 0
