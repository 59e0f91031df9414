"""The whole pipeline (runner.run_pipeline over the five notebooks) on partial inputs: an event log alone
(no customers, no feedback, no outcome) and customers + events without feedback. The run must complete,
map behaviour, and say plainly what it could not do and why."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from journey_analysis import artifacts, narrative, runner
from journey_analysis.config import DEMO_CONFIG
from journey_analysis.journey_map import ALL

from shapes import HELPDESK


@pytest.mark.skipif(not HELPDESK.exists(), reason=f"real event log not found: {HELPDESK}")
def test_events_only_run_maps_behaviour_and_says_what_is_missing(tmp_path):
    # the first 2,000 events of the real helpdesk log, and a config naming events only
    with gzip.open(HELPDESK, "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(2001)]
    (tmp_path / "helpdesk.csv").write_text("".join(lines), encoding="utf-8")
    stages = ["Assign seriousness", "Take in charge ticket", "Wait", "Resolve ticket", "Closed"]
    cfg = {"name": "helpdesk", "journey": "query", "title": "Help desk tickets",
           "objective": "Resolve tickets faster", "step": "stage",
           "data": {"events": "helpdesk.csv", "duplicates": "keep"},
           "stages": [{"name": s} for s in stages]}
    (tmp_path / "helpdesk.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")

    res = runner.run_pipeline(tmp_path / "helpdesk.yaml", run_id="events-only", reports_dir=tmp_path / "reports",
                              processed_dir=tmp_path / "processed", progress=False)

    out = tmp_path / "processed" / "events-only"
    # no customers, no feedback: recorded as absent, read back as None
    assert artifacts.load_artifact(out / "customers.parquet") is None
    assert artifacts.load_artifact(out / "feedback.parquet") is None
    # the map from behaviour alone
    m = pd.read_parquet(out / "journey_map.parquet")
    overall = m[(m["segment"] == ALL) & m["configured"]].set_index("stage")
    assert overall.index.tolist() == stages
    assert (overall["customers"] > 0).all()
    assert overall.loc["Assign seriousness", "customers"] > 400          # ~500 tickets in 2,000 events
    assert overall["dwell_median_h"].notna().sum() >= 4
    assert overall["sentiment_mean"].isna().all() and overall["satisfaction_mean"].isna().all()
    assert overall["missing"].str.contains("no feedback").all()
    # segments from behaviour only
    segs = pd.read_parquet(out / "segments.parquet")
    assert segs["segment"].nunique() >= 2 and len(segs) == overall.loc["Assign seriousness", "segment_customers"]
    # no drivers, and why
    found = json.loads((out / "findings.json").read_text())
    assert found["n_significant_drivers"] == 0 and found["top_driver"] is None
    assert found["no_drivers_reason"].startswith("No outcome column: no moments of truth")
    assert pd.read_parquet(out / "drivers.parquet").empty
    assert found["top_pain_point"] in stages
    # no feedback was measured, so no recommendation may claim the experience is broken
    recs = pd.read_parquet(out / "recommendations.parquet")
    assert len(recs) and not recs["action"].eq("fix the experience").any()
    assert found["limitations"] == [narrative.NO_FEEDBACK, narrative.NO_CUSTOMERS, narrative.NO_OUTCOME]
    # the report says it plainly
    page = res.report.read_text(encoding="utf-8")
    assert "What this run could not do, and why" in page
    for sentence in (narrative.NO_FEEDBACK, narrative.NO_CUSTOMERS, narrative.NO_OUTCOME):
        assert sentence in page
    assert json.loads((res.folder / "run.json").read_text())["limitations"] == found["limitations"]


def test_demo_without_feedback_still_finds_drivers_from_behaviour(tmp_path):
    from journey_analysis.datasets import write_demo

    paths = write_demo(tmp_path / "demo", n_customers=300, seed=0)
    cfg = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    cfg["data"] = {"events": str(paths["events"]), "customers": str(paths["customers"])}
    (tmp_path / "nofeedback.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")

    res = runner.run_pipeline(tmp_path / "nofeedback.yaml", run_id="no-feedback", reports_dir=tmp_path / "reports",
                              processed_dir=tmp_path / "processed", progress=False)

    out = tmp_path / "processed" / "no-feedback"
    assert artifacts.load_artifact(out / "feedback.parquet") is None
    assert len(artifacts.load_artifact(out / "customers.parquet")) == 300
    m = pd.read_parquet(out / "journey_map.parquet")
    overall = m[(m["segment"] == ALL) & m["configured"]]
    assert (overall["customers"] > 0).all() and overall["sentiment_mean"].isna().all()
    assert overall["missing"].str.contains("no feedback").all()
    found = json.loads((out / "findings.json").read_text())
    assert found["no_drivers_reason"] is None                    # the outcome is there: drivers were fitted
    drivers = pd.read_parquet(out / "drivers.parquet")
    stage_drivers = drivers[drivers["kind"].isin(["experience", "time"])]
    assert len(stage_drivers) and set(stage_drivers["measure"]) == {"time_log_h"}  # no feedback: no experience
    assert {"attribute", "touchpoint"} <= set(drivers["kind"])  # who the customers are, what happened to them
    assert found["limitations"] == [narrative.NO_FEEDBACK]
    page = res.report.read_text(encoding="utf-8")
    assert narrative.NO_FEEDBACK in page
    assert narrative.NO_CUSTOMERS not in page and narrative.NO_OUTCOME not in page


def test_feedback_without_ratings_is_scored_by_words_and_reported():
    from journey_analysis.sentiment import score_feedback

    assert score_feedback(None) == (None, None)
    fb = pd.DataFrame({"feedback_id": ["1", "2", "3"], "customer_id": ["a", "b", "c"], "stage": ["x", "x", "y"],
                       "text": ["Great service, thank you", "Terrible, slow and rude", ""],
                       "rating": [float("nan")] * 3, "rating_type": [None] * 3})
    scored, model = score_feedback(fb)
    assert model is None
    assert scored["sentiment_status"].tolist() == ["scored", "scored", "empty"]
    assert scored.loc[0, "sentiment"] > 0 > scored.loc[1, "sentiment"]
    from journey_analysis.config import load_config

    cfg = load_config(DEMO_CONFIG)
    assert narrative.limitations(cfg, pd.DataFrame({"customer_id": ["a"]}), scored) == [narrative.NO_RATINGS]
    assert narrative.limitations(cfg, None, None) == [narrative.NO_FEEDBACK, narrative.NO_CUSTOMERS,
                                                   "No customers file, so no outcome column 'churned': no moments "
                                                   "of truth (driver analysis needs an outcome)."]
    assert narrative.voice_model_report(None, scored) == "The feedback has no ratings to learn from: lexicon only."
    assert narrative.voice_model_report(None, None) == narrative.NO_FEEDBACK
    assert narrative.sentiment_by_stage(None, ["x"]).empty
    assert narrative.sentiment_by_stage(scored, ["x", "y"]).loc["x", "comments"] == 2


def test_segmentation_skipped_with_a_reason_when_data_are_too_thin():
    from journey_analysis import segment

    few = pd.DataFrame({"n_events": [1.0, 2.0, 3.0]}, index=pd.Index(["a", "b", "c"], name="customer_id"))
    seg, note = segment.try_segment_customers(few)
    assert seg is None and note.startswith("Segmentation skipped: too few customers (3;")
    flat = pd.DataFrame({"n_events": range(40), "n_stages": [2.0] * 40, "worst_stage": ["x"] * 40},
                        index=pd.Index([f"c{i}" for i in range(40)], name="customer_id"))
    seg, note = segment.try_segment_customers(flat)
    assert seg is None and note.startswith("Segmentation skipped: too few features (1 that vary")
    assert narrative.segments_frame(None) is None and narrative.segments_markdown(None, note) == note
    assert segment.plot_sizes(None) is None and segment.save(None, "unused.joblib") is None
    rng = np.random.default_rng(0)
    two = pd.DataFrame({"x": np.r_[rng.normal(0, 1, 30), rng.normal(8, 1, 30)], "y": rng.normal(0, 1, 60)},
                       index=pd.Index([f"c{i}" for i in range(60)], name="customer_id"))
    seg, note = segment.try_segment_customers(two, k=2)
    assert note is None and seg.k == 2
    assert seg.labels.iloc[:30].nunique() == 1 and seg.labels.iloc[0] != seg.labels.iloc[-1]
    assert narrative.limitations(None, None, None, segmentation_note="Segmentation skipped: x.") == [
        narrative.NO_FEEDBACK, "No customer attributes.", narrative.NO_OUTCOME, "Segmentation skipped: x."]


def test_absent_artifacts_round_trip(tmp_path):
    frame = pd.DataFrame({"a": [1]})
    artifacts.save_artifact(frame, tmp_path / "f.parquet")
    assert artifacts.save_artifact(None, tmp_path / "f.parquet").name == "f.parquet.absent"
    assert not (tmp_path / "f.parquet").exists() and artifacts.load_artifact(tmp_path / "f.parquet") is None
    artifacts.save_artifact(frame, tmp_path / "f.parquet")                  # data again: the marker goes
    assert not (tmp_path / "f.parquet.absent").exists()
    assert artifacts.load_artifact(tmp_path / "f.parquet").equals(frame)


# --------------------------------------------------------------------------------------------------
# real data shaped as CX teams have it: `journey validate` passing means `journey run` passes
# --------------------------------------------------------------------------------------------------
def _validate_then_run(cfg: Path, tmp_path: Path, run_id: str, n_customers: int | None = None) -> tuple[Path, Path]:
    from journey_analysis.cli import main

    assert main(["validate", "--config", str(cfg)]) == 0
    args = ["run", "--config", str(cfg), "--run-id", run_id, "--reports", str(tmp_path / "reports"),
            "--processed", str(tmp_path / "processed"), "--no-progress"]
    if n_customers:
        args += ["--param", f"n_customers={n_customers}"]
    assert main(args) == 0
    return tmp_path / "processed" / run_id, tmp_path / "reports" / run_id


def _write(tmp_path: Path, cfg: dict, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def test_wide_milestone_table_with_a_yes_no_outcome_and_reviews_by_case_id(tmp_path):
    from shapes import MILESTONES, bpic_applicants, bpic_wide, reviews_for

    wide = bpic_wide(n_cases=300, n_blank=20, n_swap=12)
    wide.to_csv(tmp_path / "applications.csv", index=False)
    bpic_applicants(wide).to_csv(tmp_path / "applicants.csv", index=False)
    reviews_for(wide["application_id"], n_phantom=40).to_csv(tmp_path / "reviews.csv", index=False)
    cfg = _write(tmp_path, {
        "name": "loans", "objective": "Fewer declined applications", "outcome": "declined", "outcome_good": "No",
        "data": {"events": {"path": "applications.csv", "id": "application_id",
                            "milestones": {s: f"{s}_at" for s in MILESTONES}},
                 "customers": {"path": "applicants.csv", "id": "application_id"},
                 "feedback": {"path": "reviews.csv", "id": "case_ref", "rating_type": "stars",
                              "columns": {"stars": "rating", "comment": "text"}}},
        "satisfaction": {"rating_type": "stars", "min": 1, "max": 5},
        "stages": [{"name": s, "terminal": s == "approved"} for s in MILESTONES]})
    out, _ = _validate_then_run(cfg, tmp_path, "wide")
    q = pd.read_parquet(out / "quality.parquet").set_index("check")
    assert q.loc["milestone_out_of_order", "rows"] == 12 and q.loc["milestone_out_of_order", "detail"] == "finalized before accepted"
    assert q.loc["no_customer", "rows"] == 40                        # the reviews of no application
    fb = pd.read_parquet(out / "feedback.parquet")
    assert len(fb) == 300 and set(fb["customer_id"]) <= set(wide["application_id"])
    segs = pd.read_parquet(out / "segments.parquet")
    assert len(segs) <= 300 and set(segs["customer_id"]) <= set(wide["application_id"])   # no phantom customers
    m = pd.read_parquet(out / "journey_map.parquet")
    overall = m[(m["segment"] == ALL) & m["configured"]].set_index("stage")
    assert overall.index.tolist() == list(MILESTONES)
    assert overall.loc["submitted", "customers"] == 300
    assert overall.loc["finalized", "customers"] == int((wide["finalized_at"] != "").sum()) - 12
    cust = pd.read_parquet(out / "customers.parquet")
    assert set(cust["declined"].dropna()) == {"Yes", "No"}             # the labels as the export wrote them
    found = json.loads((out / "findings.json").read_text())
    assert narrative.NO_EVENTS not in found["limitations"]


def test_customer_table_alone_runs_and_says_what_needs_events(tmp_path):
    from shapes import churn_sample

    churn_sample(tmp_path, n=400)
    cfg = _write(tmp_path, {"name": "telecom", "objective": "Keep customers", "outcome": "churn", "outcome_good": False,
                            "data": {"customers": {"path": "churn.csv", "id": "rownames"}}})
    out, folder = _validate_then_run(cfg, tmp_path, "customers-only")
    segs = pd.read_parquet(out / "segments.parquet")
    assert len(segs) == 400 and segs["segment"].nunique() >= 2        # segments from the attributes
    assert pd.read_parquet(out / "events.parquet").empty
    cust = pd.read_parquet(out / "customers.parquet")
    assert cust["churn"].dtype == bool or str(cust["churn"].dtype) == "boolean"
    found = json.loads((out / "findings.json").read_text())
    assert found["limitations"][0] == narrative.NO_EVENTS
    assert narrative.NO_EVENTS in (folder / "report.html").read_text(encoding="utf-8")
    assert json.loads((folder / "run.json").read_text())["headline"]["customers"] == 400


def test_two_event_sources_union_into_one_journey(tmp_path):
    from shapes import receipt_two_sources

    _, _, log = receipt_two_sources(tmp_path, n_cases=250)
    stages = ["Confirmation of receipt", "T02 Check confirmation of receipt", "T04 Determine confirmation of receipt",
              "T05 Print and send confirmation of receipt", "T06 Determine necessity of stop advice",
              "T10 Determine necessity to stop indication"]
    cfg = _write(tmp_path, {
        "name": "permits", "objective": "Faster receipt of permit applications",
        "data": {"events": [
            {"path": "front_office.csv", "id": "application", "columns": {"logged_at": "timestamp"}, "stage": "step"},
            {"path": "back_office.csv", "id": "case_ref", "columns": {"done_at": "timestamp"}, "stage": "task",
             "channel": "back office"}], "duplicates": "keep"},
        "stages": [{"name": s} for s in stages]})
    out, _ = _validate_then_run(cfg, tmp_path, "two-sources")
    ev = pd.read_parquet(out / "events.parquet")
    assert len(ev) == len(log) and ev["row_id"].is_unique
    m = pd.read_parquet(out / "journey_map.parquet")
    overall = m[(m["segment"] == ALL) & m["configured"]].set_index("stage")
    direct = log.groupby("activity")["case_id"].nunique()
    for s in stages:                                                  # the union is the original log
        assert overall.loc[s, "customers"] == direct[s]


def test_one_stage_journey_from_a_constant_stage(tmp_path):
    from shapes import helpdesk_head

    helpdesk_head(tmp_path, 1500)
    cfg = _write(tmp_path, {"name": "support", "objective": "Resolve tickets",
                            "data": {"events": {"path": "helpdesk.csv", "id": "case_id", "stage": "support",
                                                "columns": {"activity": "task"}}, "duplicates": "keep"},
                            "stages": [{"name": "support"}]})
    out, _ = _validate_then_run(cfg, tmp_path, "one-stage")
    m = pd.read_parquet(out / "journey_map.parquet")
    overall = m[(m["segment"] == ALL) & m["configured"]]
    n_cases = pd.read_csv(tmp_path / "helpdesk.csv", dtype=str)["case_id"].nunique()
    assert overall["stage"].tolist() == ["support"] and overall["customers"].iloc[0] == n_cases


def test_feedback_alone_runs(tmp_path):
    from shapes import reviews_for

    reviews_for([f"R{i}" for i in range(200)], n_phantom=0).to_csv(tmp_path / "reviews.csv", index=False)
    cfg = _write(tmp_path, {"name": "reviews", "objective": "Hear the customers",
                            "data": {"feedback": {"path": "reviews.csv", "id": "case_ref", "rating_type": "stars",
                                                  "columns": {"stars": "rating", "comment": "text"}}},
                            "satisfaction": {"rating_type": "stars", "min": 1, "max": 5}})
    out, _ = _validate_then_run(cfg, tmp_path, "feedback-only")
    fb = pd.read_parquet(out / "feedback.parquet")
    assert len(fb) == 200 and fb["rating"].between(1, 5).all() and fb["customer_id"].nunique() == 200
    found = json.loads((out / "findings.json").read_text())
    assert found["limitations"][:2] == [narrative.NO_EVENTS, narrative.NO_CUSTOMERS]
