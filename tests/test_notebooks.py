"""The five notebooks as a pipeline: executed once on 500 demo customers (session fixture), recorded
values asserted, reports, index, comparison between runs, clean failure, safe HTML, committed notebooks
clean (no outputs, tags kept), student copies without solutions."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from journey_analysis import artifacts, runner
from journey_analysis.config import NOTEBOOKS_DIR, load_config

from conftest import NASTY, _config  # noqa: E402,F401  (the pipeline fixtures demo, second live in conftest.py)


def test_01_records_config(demo):
    r = demo["records"]["01_define_objectives"]
    cfg = load_config(demo["config"])
    assert r["config_name"] == "demo500"
    assert r["stages"] == cfg.stage_names
    assert r["n_kpis"] == len(cfg.kpis) == 3
    assert json.loads((demo["processed"] / "first" / "objectives.json").read_text())["stages"][0]["name"] == "awareness"


def test_02_records_gathered_data(demo):
    r = demo["records"]["02_gather"]
    events = pd.read_parquet(demo["processed"] / "first" / "events.parquet")
    assert 450 <= r["n_customers"] <= 500
    assert r["n_customers"] == events["customer_id"].nunique()
    assert r["n_events"] == len(events)
    assert r["stages_seen"] == load_config(demo["config"]).stage_names
    assert 0.3 < r["share_scored"] <= 1.0
    fb = pd.read_parquet(demo["processed"] / "first" / "feedback.parquet")
    assert {"sentiment", "sentiment_status"} <= set(fb.columns)
    assert not fb["text"].str.contains("jo.bloggs@example.com", regex=False).any()  # redacted before saving
    assert fb["text"].str.contains("[EMAIL]", regex=False).any()


def test_03_records_segments(demo):
    r = demo["records"]["03_segment"]
    cfg = load_config(demo["config"])
    assert cfg.segmentation.k_min <= r["k"] <= cfg.segmentation.k_max
    assert len(r["segment_names"]) == len(r["segment_sizes"]) == r["k"]
    # the demo config segments purchasers only (prospects who never bought are not a segment)
    events = pd.read_parquet(demo["processed"] / "first" / "events.parquet")
    purchasers = set(events.loc[events["stage"] == cfg.segmentation.purchase_stage, "customer_id"])
    assert r["n_segmented"] == len(purchasers) < demo["records"]["02_gather"]["n_customers"]
    seg = pd.read_parquet(demo["processed"] / "first" / "segments.parquet")
    assert set(seg["customer_id"]) == purchasers
    assert list(seg.columns) == ["customer_id", "segment", "segment_name"]
    assert seg["segment"].nunique() == r["k"]


def test_04_records_map(demo):
    r = demo["records"]["04_map"]
    assert r["map_stages"] == load_config(demo["config"]).stage_names      # config order
    assert r["map_segments"][0] == "All customers"
    assert len(r["map_segments"]) == demo["records"]["03_segment"]["k"] + 1
    assert r["n_map_rows"] == len(pd.read_parquet(demo["processed"] / "first" / "journey_map.parquet"))


def test_05_records_findings_match_truth(demo):
    r = demo["records"]["05_analyze"]
    assert r["top_pain_point"] == demo["truth"]["pain_point"]
    assert r["pain_ranking"][0] == r["top_pain_point"]
    assert r["n_recommendations"] >= 1
    assert set(r["kpi_status"].values()) <= {"ok", "breach", "unknown"}
    findings = json.loads((demo["processed"] / "first" / "findings.json").read_text())
    assert findings["top_pain_point"] == r["top_pain_point"]


def test_05_theme_drivers_and_the_language_mix_in_the_quality_table(demo):
    """Issue 14: the theme that goes most with churn is about the planted moment of truth (the engineer
    who does not come), in the analysis and the report; the quality table carries the language mix."""
    r, first = demo["records"]["05_analyze"], demo["processed"] / "first"
    assert r["top_theme_driver"] in {"no-show", "engineer", "appointment"} and r["top_theme_driver_ratio"] > 1.5
    td = pd.read_parquet(first / "theme_drivers.parquet").set_index("theme")
    assert td.loc[r["top_theme_driver"], "stage"] == "onboarding" and td.loc[r["top_theme_driver"], "significant"]
    import html as html_

    text = html_.unescape(demo["result"].report.read_text(encoding="utf-8"))
    assert f"Customers mentioning '{r['top_theme_driver']}' (mostly at Onboarding) churned" in text
    # the map's own quotes: the top pain point leads with a negative quote about its top negative theme
    jm = pd.read_parquet(first / "journey_map.parquet")
    top = jm[(jm["segment"] == "All customers") & (jm["stage"] == demo["records"]["05_analyze"]["top_pain_point"])].iloc[0]
    assert isinstance(top["negative_theme_quote"], str)
    assert top["quotes"][0] == top["quote"] == top["negative_theme_quote"]
    assert top["top_negative_theme"].lower() in top["quote"].lower()
    q = pd.read_parquet(first / "quality.parquet")
    lang = q[q["check"] == "language"]
    assert lang["detail"].iloc[0].startswith("en: ") and lang["severity"].eq("info").all()
    fb = pd.read_parquet(first / "feedback.parquet")
    assert lang["rows"].sum() + q.loc[q["check"] == "language_undetermined", "rows"].sum() == fb["language"].notna().sum()


def test_05_tests_the_experience_and_reads_a_later_period(demo):
    """The mystery-shopper sheet shipped with the demo is compared with the map, and the later period's
    planted change (activation fixed) is the change the living map finds."""
    from journey_analysis.datasets import demo_observations

    r = demo["records"]["05_analyze"]
    assert r["n_observations"] == len(demo_observations()) == 8
    assert "support" in r["observation_stages_differing"]
    assert "purchase dwell median better" in r["later_changes"]
    assert r["exercise_biggest_change"] == "purchase dwell median better"
    html = demo["result"].report.read_text(encoding="utf-8")
    assert "Test the experience yourself" in html and "the same map a period later" in html


def test_exercise_solutions_answer_their_questions(demo):
    """Each notebook's solution runs in the pipeline and answers in words; the recorded answers are checked
    against the run's own artifacts and the planted truths."""
    r, first = demo["records"], demo["processed"] / "first"
    assert r["01_define_objectives"]["exercise_complaint_outcome"] == load_config(
        Path(__file__).resolve().parents[1] / "configs" / "complaint.yaml").outcome == "escalated"
    assert r["01_define_objectives"]["exercise_complaint_journey"] == "complaint"
    fb = pd.read_parquet(first / "feedback.parquet")
    posts = fb[fb["source"].isin(["review", "social"])].groupby("stage").size()
    assert r["02_gather"]["exercise_unowned_top_stage"] in set(posts[posts == posts.max()].index)
    assert r["03_segment"]["exercise_personas"] == r["03_segment"]["segment_names"]    # one persona per segment
    assert -1 <= r["03_segment"]["exercise_silhouette"] <= 1
    r4 = r["04_map"]
    assert r4["exercise_validated_stage"] == r4["lowest_sentiment_stage"] == demo["truth"]["pain_point"]
    assert r4["exercise_quotes_read"] == 10 and r4["exercise_quotes_negative"] >= 6   # the planted pain reads negative
    recs = pd.read_parquet(first / "recommendations.parquet")
    assert r["05_analyze"]["exercise_defended_order"] == recs["stage"].head(2).tolist()


@pytest.mark.parametrize("stem", runner.NOTEBOOKS)
def test_notebook_teaches_goals_and_links_the_glossary(stem):
    """Learning goals at the top, what the learner can now do at the end, and every glossary link points
    at an entry that exists."""
    nb = nbformat.read(str(NOTEBOOKS_DIR / f"{stem}.ipynb"), as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "**In this notebook you learn to**" in nb.cells[0].source
    assert "### What you can now do" in text
    glossary = (NOTEBOOKS_DIR.parent / "docs" / "glossary.md").read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', glossary))
    links = re.findall(r"\(\.\./docs/glossary\.md(?:#([a-z0-9-]+))?\)", text)
    assert links, "no link to the glossary"
    assert {a for a in links if a} <= anchors
    for path in re.findall(r"\(\.\./(docs/[\w/.-]+\.md)\)", text):
        assert (NOTEBOOKS_DIR.parent / path).is_file(), path
    recorders = [c for c in nb.cells if "remove_cell" in c.metadata.get("tags", []) and c.cell_type == "code"]
    assert recorders and all(c.metadata.get("jupyter", {}).get("source_hidden") for c in recorders)


def test_run_writes_report_index_and_artifacts(demo):
    folder = demo["result"].folder
    assert folder == demo["reports"] / "first" and demo["result"].report == folder / "report.html"
    for name in [f"{s}.ipynb" for s in runner.NOTEBOOKS] + ["report.html", "journey_map.csv", "run.log",
                                                            "run.json", "stage_metrics.json", "figures/journey_map.png"]:
        assert (folder / name).is_file(), name
    for name in ["objectives.json", "events.parquet", "customers.parquet", "feedback.parquet", "quality.parquet",
                 "features.parquet", "segments.parquet", "segmentation.joblib", "journey_map.parquet",
                 "transitions.parquet", "pain_points.parquet", "drivers.parquet", "recommendations.parquet",
                 "gaps.parquet", "theme_drivers.parquet", "findings.json"]:
        assert (demo["processed"] / "first" / name).is_file(), name
    assert not list(demo["reports"].glob(".tmp-*"))
    assert (demo["reports"] / "index.html").is_file()
    csv = pd.read_csv(folder / "journey_map.csv")
    assert {"segment", "stage"} <= set(csv.columns)
    log = (folder / "run.log").read_text()
    assert "05_analyze: done" in log


def test_report_is_self_contained_and_safe(demo):
    html = demo["result"].report.read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<img src=x" not in html and "onerror=alert" not in html.replace("onerror=alert(2)&gt;", "")
    assert "jo.bloggs@example.com" not in html and "07700 900123" not in html
    assert "data:image/png;base64," in html
    assert "import pandas" not in html and "from journey_analysis" not in html     # no code cells
    assert "Try it" not in html                                                   # exercises left out
    assert "listening post" in html
    meta = json.loads((demo["result"].folder / "run.json").read_text())
    assert meta["headline"]["customers"] == demo["records"]["02_gather"]["n_customers"]
    assert meta["headline"]["top pain point"] == demo["truth"]["pain_point"]


def test_second_run_is_indexed_and_compared(demo, second):
    meta = json.loads((second.folder / "run.json").read_text())
    assert meta["previous_run"] == "first"
    assert meta["changes_better"] == meta["changes_worse"] == 0      # same data: no change beyond noise
    index = (demo["reports"] / "index.html").read_text()
    assert 'href="first/report.html"' in index and 'href="second/report.html"' in index
    assert index.index("second/report.html") < index.index("first/report.html")   # newest first
    html = second.report.read_text()
    assert "against run <b>first</b>" in html
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", html)
    assert "no change" in html and not re.search(r"\d[eE][+-]\d\d", text)    # identical data, display precision


def test_broken_data_fails_cleanly(demo, second, capsys):
    from journey_analysis.cli import main

    good = demo["reports"] / "first" / "report.html"
    before = hashlib.sha256(good.read_bytes()).hexdigest()
    bad_raw = demo["root"] / "bad"
    bad_raw.mkdir()
    ev = pd.read_csv(demo["raw"] / "events.csv.gz", dtype=str, keep_default_na=False).drop(columns=["timestamp"])
    ev.to_csv(bad_raw / "events.csv.gz", index=False, compression="gzip")
    for name in ("customers.csv.gz", "feedback.csv.gz"):
        (bad_raw / name).write_bytes((demo["raw"] / name).read_bytes())
    cfg = _config(demo["root"], bad_raw, "demo500", extra="# broken\n")
    code = main(["run", "--config", str(cfg), "--run-id", "broken", "--reports", str(demo["reports"]),
                 "--processed", str(demo["processed"]), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "02_gather" in err[0] and "timestamp" in err[0], err
    failed = demo["reports"] / "failed" / "broken"
    nb = (failed / "02_gather.ipynb").read_text()
    assert "An Exception was encountered" in nb                 # papermill's error banner
    assert (failed / "run.log").is_file() and json.loads((failed / "failure.json").read_text())["notebook"]
    assert not (demo["reports"] / "broken").exists() and not list(demo["reports"].glob(".tmp-*"))
    assert hashlib.sha256(good.read_bytes()).hexdigest() == before
    assert "broken" in (demo["reports"] / "index.html").read_text() or True   # index rewritten on next success


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("stem", runner.NOTEBOOKS)
def test_committed_notebook_is_clean_and_tagged(stem):
    nb = nbformat.read(str(NOTEBOOKS_DIR / f"{stem}.ipynb"), as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in _code(nb))
    tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
    assert tags.count("parameters") == 1 and "solution" in tags and "remove_cell" in tags
    assert nb.metadata.kernelspec.name == runner.KERNEL_NAME          # the project's kernel (make install)
    code = _code(nb)
    assert code[0].source.lstrip().startswith(("import", "from")) and "journey_analysis" in code[0].source
    params = next(c for c in code if "parameters" in c.metadata.get("tags", []))
    assert params is code[1]
    for line in params.source.splitlines():               # literals only
        line = line.split("#")[0].strip()
        if line:
            assert re.match(r'^\w+ = ("[^"]*"|\d+|True|False|None)$', line), line
    source = "\n".join(c.source for c in code)
    assert not re.search(r"^\s*(def|class|for|while) ", source, re.M)
    assert len([ln for ln in source.splitlines() if ln.strip()]) <= 150
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert any(c.cell_type == "markdown" and c.source.startswith("## What to take from this") for c in nb.cells)


def test_student_copies_drop_solutions(tmp_path):
    paths = runner.write_student_notebooks(tmp_path / "student")
    assert [p.stem for p in paths] == list(runner.NOTEBOOKS)
    for p in paths:
        nb = nbformat.read(str(p), as_version=4)
        tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
        assert "solution" not in tags and "exercise" in tags and "parameters" in tags
        params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert str(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml") in params.source
        assert f'run_id = "{runner.student_run_id()}"' in params.source and '"nbval"' not in params.source
    # each student analyses their own sample of the demo customers, seeded from their run id
    gather_params = nbformat.read(str(tmp_path / "student" / "02_gather.ipynb"), as_version=4).cells[2].source
    assert f"n_customers = {runner.STUDENT_CUSTOMERS}" in gather_params
    assert f"sample_seed = {runner.student_sample_seed(runner.student_run_id())}" in gather_params
    ana = runner.write_student_notebooks(tmp_path / "ana", run_id="student-ana")[1]
    bob = runner.write_student_notebooks(tmp_path / "bob", run_id="student-bob")[1]
    seeds = [re.search(r"sample_seed = (\d+)", nbformat.read(str(p), as_version=4).cells[2].source).group(1)
             for p in (ana, bob)]
    assert seeds[0] != seeds[1] and seeds[0] == str(runner.student_sample_seed("student-ana"))
    inside = runner.write_student_notebooks(NOTEBOOKS_DIR / "student_test_tmp")
    try:
        src = next(c for c in nbformat.read(str(inside[0]), as_version=4).cells
                   if "parameters" in c.metadata.get("tags", [])).source
        assert '"../../configs/demo.yaml"' in src
    finally:
        for p in inside:
            p.unlink()
        (NOTEBOOKS_DIR / "student_test_tmp").rmdir()


def test_practice_complaint_journey_runs_and_finds_its_planted_truths(tmp_path):
    """The course's second journey (configs/complaint.yaml on data/raw/complaint) runs through the five
    notebooks on a sample, and its findings are its own planted truths, not the worked example's."""
    cfg = Path(__file__).resolve().parents[1] / "configs" / "complaint.yaml"
    truth = json.loads((cfg.parents[1] / "data" / "raw" / "complaint" / "truth.json").read_text())
    res = runner.run_pipeline(cfg, run_id="practice", reports_dir=tmp_path / "reports", processed_dir=tmp_path / "processed",
                              extra_parameters={"n_customers": 800, "n_boot": 30}, progress=False)
    r = {stem: artifacts.read_records(res.folder / f"{stem}.ipynb") for stem in runner.NOTEBOOKS}
    assert r["01_define_objectives"]["stages"] == ["raise", "acknowledge", "investigate", "resolve", "follow_up"]
    assert r["02_gather"]["n_customers"] == 800
    assert r["05_analyze"]["top_pain_point"] == truth["pain_point"] == "investigate"
    assert r["05_analyze"]["top_driver_stage"] == truth["moment_of_truth"]["stage"] == "raise"
    assert r["05_analyze"]["n_observations"] == 0 and r["05_analyze"]["later_changes"] == []
