"""`journey init`: a config drafted from real files (BPIC-2012 as a wide milestone table with an applicant
table and reviews by case id, the help-desk and receipt logs, the churn table alone) that validates and
runs as written."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from journey_analysis.cli import main
from journey_analysis.config import load_config
from journey_analysis.journey_map import ALL

from shapes import MILESTONES, RECEIPT, bpic_applicants, bpic_wide, churn_sample, helpdesk_head, reviews_for


def _init(tmp_path, *args) -> tuple[str, dict]:
    out = tmp_path / "configs" / "drafted.yaml"
    assert main(["init", *args, "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert main(["validate", "--config", str(out)]) == 0
    return out, yaml.safe_load(text)


def _run(cfg, tmp_path, run_id, n=150):
    assert main(["run", "--config", str(cfg), "--run-id", run_id, "--reports", str(tmp_path / "reports"),
                 "--processed", str(tmp_path / "processed"), "--param", f"n_customers={n}", "--no-progress"]) == 0
    return tmp_path / "processed" / run_id


def test_init_drafts_a_wide_table_with_customers_and_reviews_that_runs(tmp_path, capsys):
    wide = bpic_wide(n_cases=300, n_blank=20, n_swap=12)
    wide.to_csv(tmp_path / "applications.csv", index=False)
    bpic_applicants(wide).to_csv(tmp_path / "applicants.csv", index=False)
    reviews_for(wide["application_id"], n_phantom=30).to_csv(tmp_path / "reviews.csv", index=False)
    path, cfg = _init(tmp_path, "--events", str(tmp_path / "applications.csv"), "--customers",
                      str(tmp_path / "applicants.csv"), "--feedback", str(tmp_path / "reviews.csv"))
    text = path.read_text(encoding="utf-8")
    ev = cfg["data"]["events"]
    assert ev["id"] == "application_id" and ev["path"] == "../applications.csv"    # relative to the config
    assert list(ev["milestones"]) == list(MILESTONES)                 # proposed in their median time order
    assert ev["milestones"]["finalized"] == "finalized_at"
    assert [s["name"] for s in cfg["stages"]] == list(MILESTONES)
    assert "median time at this stage" in text                        # measured durations as comments
    assert cfg["data"]["customers"]["id"] == "application_id"
    assert cfg["outcome"] == "declined" and cfg["outcome_good"] is False
    fb = cfg["data"]["feedback"]
    assert fb["id"] == "case_ref" and fb["columns"] == {"stars": "rating", "comment": "text"}
    assert cfg["satisfaction"] == {"rating_type": "stars", "min": 1, "max": 5} and fb["rating_type"] == "stars"
    load_config(path)
    out = _run(path, tmp_path, "init-wide")
    m = pd.read_parquet(out / "journey_map.parquet")
    assert m.loc[(m["segment"] == ALL) & m["configured"], "stage"].tolist() == list(MILESTONES)
    assert pd.read_parquet(out / "quality.parquet").set_index("check").loc["no_customer", "rows"] == 30


def test_init_drafts_long_logs_with_stages_in_observed_order(tmp_path):
    helpdesk_head(tmp_path, 3000)
    path, cfg = _init(tmp_path, "--events", str(tmp_path / "helpdesk.csv"))
    ev = cfg["data"]["events"]
    assert ev["id"] == "case_id" and ev["columns"] == {"activity": "stage"}
    names = [s["name"] for s in cfg["stages"]]
    log = pd.read_csv(tmp_path / "helpdesk.csv", dtype=str)
    assert sorted(names) == sorted(log["activity"].unique())
    assert names[0] == "Assign seriousness"                            # a ticket's first step
    assert names.index("Take in charge ticket") < names.index("Resolve ticket") < names.index("Closed")
    assert "outcome" not in cfg
    out = _run(path, tmp_path, "init-helpdesk")
    assert pd.read_parquet(out / "segments.parquet")["customer_id"].nunique() <= 150


def test_init_on_the_receipt_log_keeps_its_channel():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        _, cfg = _init(tmp, "--events", str(RECEIPT))
        assert cfg["data"]["events"]["id"] == "case_id"
        assert cfg["stages"][0]["name"] == "Confirmation of receipt" and len(cfg["stages"]) == 27


def test_init_drafts_a_customers_only_config_that_runs(tmp_path):
    churn_sample(tmp_path, n=300)
    path, cfg = _init(tmp_path, "--customers", str(tmp_path / "churn.csv"))
    assert cfg["data"]["customers"] == {"path": "../churn.csv", "id": "rownames"}
    assert cfg["outcome"] == "churn" and cfg["outcome_good"] is False and "stages" not in cfg
    assert "international_plan" in path.read_text(encoding="utf-8")   # other two-valued columns named
    out = _run(path, tmp_path, "init-churn")
    assert len(pd.read_parquet(out / "segments.parquet")) == 150


def test_init_usage_and_refusals(tmp_path, capsys):
    assert main(["init", "--out", str(tmp_path / "x.yaml")]) == 2
    (tmp_path / "x.yaml").write_text("name: x\n")
    churn_sample(tmp_path, n=50)
    assert main(["init", "--customers", str(tmp_path / "churn.csv"), "--out", str(tmp_path / "x.yaml")]) == 1
    assert "already exists" in capsys.readouterr().err
    (tmp_path / "no_times.csv").write_text("a,b\n1,2\n3,4\n")
    assert main(["init", "--events", str(tmp_path / "no_times.csv"), "--out", str(tmp_path / "y.yaml")]) == 1
    assert "No column of the events file holds date-times" in capsys.readouterr().err


def test_init_takes_the_scale_the_feedback_file_names(tmp_path):
    from journey_analysis.datasets import write_demo

    paths = write_demo(tmp_path / "demo", n_customers=200, seed=0)
    _, cfg = _init(tmp_path, "--events", str(paths["events"]), "--customers", str(paths["customers"]),
                   "--feedback", str(paths["feedback"]))
    assert cfg["satisfaction"] == {"rating_type": "csat", "min": 1, "max": 5}       # the most common rating_type
    assert cfg["outcome"] == "churned" and cfg["outcome_good"] is False
    assert [s["name"] for s in cfg["stages"]] == ["awareness", "consideration", "purchase", "onboarding", "usage",
                                                  "support", "renewal"]
