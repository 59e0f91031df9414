"""runner.py, artifacts.py, metrics.py and report.py on tiny hand-made inputs: recorder, atomic artifacts, safe HTML, stage figures
with their uncertainty, run comparisons, KPI checks, kernels."""
from __future__ import annotations

import json
import math

import nbformat
import numpy as np
import pandas as pd
import pytest

from journey_analysis import artifacts, metrics, report, runner
from journey_analysis.errors import JourneyError


def _nb_with_outputs(outputs):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data=d, metadata=m) for d, m in outputs]
    nb.cells = [cell]
    return nb


def test_read_records_and_figures_from_outputs():
    nb = _nb_with_outputs([
        ({artifacts.RECORD_MIME: {"name": "k", "value": 4}, "text/plain": "k = 4"}, {}),
        ({artifacts.RECORD_MIME: {"name": "stages", "value": ["a", "b"]}, "text/plain": ""}, {}),
        ({artifacts.RECORD_MIME: {"name": "k", "value": 5}, "text/plain": ""}, {}),
        ({"image/png": "aGVsbG8=", "text/plain": ""}, {artifacts.FIGURE_KEY: "journey_map"}),
        ({"image/png": "aGVsbG8=", "text/plain": ""}, {}),
    ])
    assert artifacts.read_records(nb) == {"k": 5, "stages": ["a", "b"]}
    assert artifacts.read_figures(nb) == {"journey_map": b"hello"}


def test_jsonable_converts_numpy_and_nan():
    v = artifacts.jsonable({"a": np.int64(3), "b": np.array([1.5, np.nan]), "t": pd.Timestamp("2024-01-01", tz="UTC")})
    assert v == {"a": 3, "b": [1.5, None], "t": "2024-01-01T00:00:00+00:00"}


def test_save_artifact_atomic_and_formula_safe(tmp_path):
    f = pd.DataFrame({"a": [1, 2], "t": ["=SUM(A1)", "ok"]})
    p = artifacts.save_artifact(f, tmp_path / "x" / "f.parquet")
    assert pd.read_parquet(p).equals(f)
    artifacts.save_artifact({"n": np.int64(2)}, tmp_path / "x" / "f.json")
    assert json.loads((tmp_path / "x" / "f.json").read_text()) == {"n": 2}
    artifacts.save_artifact(f, tmp_path / "x" / "f.csv")
    assert "'=SUM(A1)" in (tmp_path / "x" / "f.csv").read_text()
    assert sorted(q.name for q in (tmp_path / "x").iterdir()) == ["f.csv", "f.json", "f.parquet"]  # no temp files
    with pytest.raises(JourneyError, match="earlier stage"):
        artifacts.load_artifact(tmp_path / "missing.parquet")


def test_resolve_path_prefers_cwd_then_notebooks(tmp_path, monkeypatch):
    from journey_analysis.config import DEMO_CONFIG

    monkeypatch.chdir(tmp_path)
    assert artifacts.resolve_path("../configs/demo.yaml") == DEMO_CONFIG.resolve()
    (tmp_path / "here.yaml").write_text("x")
    assert artifacts.resolve_path("here.yaml") == tmp_path / "here.yaml"


def test_kernel_name_is_registered():
    assert runner.kernel_name() in ("journey-analysis", "python3")


def test_kernels_are_stopped_at_once_on_pandas_gracefully_on_spark(tmp_path, monkeypatch):
    """A pandas run's kernels are killed once their notebook has run (a graceful exit only frees memory:
    0.6-2.5 s per notebook at 100,000 customers); a Spark run's kernels exit gracefully (their session)."""
    import papermill

    from journey_analysis.config import DEMO_CONFIG

    seen = []

    def capture(*args, **kwargs):
        seen.append(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", capture)
    spark = tmp_path / "spark.yaml"
    spark.write_text(DEMO_CONFIG.read_text().replace("engine: pandas", "") + "\nengine: spark\n")
    for cfg_path in (DEMO_CONFIG, spark):
        with pytest.raises(KeyboardInterrupt):
            runner.run_pipeline(cfg_path, run_id="k", reports_dir=tmp_path / "r", processed_dir=tmp_path / "p",
                                progress=False)
    assert [k["shutdown_kernel"] for k in seen] == ["immediate", "graceful"]
    assert all("--IPKernelApp.log_level=ERROR" in k["extra_arguments"] for k in seen)
    # the kernels started for notebook 01 and, ahead, for 02 were stopped by the interrupt
    assert all(not k["km"].has_kernel for k in seen)
    assert not _kernel_processes()


def _kernel_processes():
    import psutil

    return [p for p in psutil.Process().children(recursive=True)
            if any("ipykernel" in part for part in p.cmdline())]


def test_the_kernel_started_ahead_has_imported_the_notebook_s_modules_and_bound_no_name():
    """A notebook's kernel is started while the notebook before it runs: it imports the modules of the
    notebook's import cell and the libraries its package calls import on first use, and its user namespace
    holds no name of them (the notebook's own import cell binds them, as in any fresh kernel)."""
    from jupyter_core.utils import run_sync

    from journey_analysis.config import NOTEBOOKS_DIR

    nb = NOTEBOOKS_DIR / "02_gather.ipynb"
    modules = runner.notebook_imports(nb)
    assert modules[0] == "pandas" and "journey_analysis.sources" in modules and "journey_analysis.sentiment" in modules
    k = runner.KernelAhead(nb, runner.kernel_name(), NOTEBOOKS_DIR)
    try:
        kc = k.km.client()
        kc.start_channels()
        run_sync(kc.wait_for_ready)(timeout=120)
        probe = ("import json as _j, os as _o, sys as _s; print(_j.dumps([sorted(m for m in %r if m in _s.modules), "
                 "sorted(n for n in globals() if not n.startswith('_') and n not in ('In', 'Out', 'get_ipython', "
                 "'exit', 'quit', 'open')), _o.getcwd()]))" % (list(k.modules),))
        msg_id = kc.execute(probe)
        while True:
            msg = run_sync(kc.get_iopub_msg)(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                imported, names, cwd = json.loads(msg["content"]["text"])
                break
        kc.stop_channels()
    finally:
        k.discard()
    assert imported == sorted(k.modules) and "sklearn.linear_model" in imported
    assert names == [] and cwd == str(NOTEBOOKS_DIR)
    assert k.km is None and not _kernel_processes()


def test_notebook_imports_and_first_use_imports_name_real_modules(tmp_path):
    import importlib.util

    from journey_analysis.config import NOTEBOOKS_DIR

    for stem in runner.NOTEBOOKS:
        mods = runner.notebook_imports(NOTEBOOKS_DIR / f"{stem}.ipynb") + runner.FIRST_USE_IMPORTS.get(stem, ())
        assert mods and all(importlib.util.find_spec(m) is not None for m in mods), stem
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# x"), nbformat.v4.new_code_cell("import (")])
    nbformat.write(bad, tmp_path / "bad.ipynb")
    assert runner.notebook_imports(tmp_path / "bad.ipynb") == ()
    ok = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import a.b as c, d\nfrom e.f import g\nfrom . import h\nx = 1")])
    nbformat.write(ok, tmp_path / "ok.ipynb")
    assert runner.notebook_imports(tmp_path / "ok.ipynb") == ("a.b", "d", "e.f")


def test_run_id_and_bad_config_fail_before_writing(tmp_path):
    from journey_analysis.config import DEMO_CONFIG

    with pytest.raises(JourneyError, match="not usable"):
        runner.run_pipeline(DEMO_CONFIG, run_id="../x", reports_dir=tmp_path / "r", processed_dir=tmp_path / "p")
    with pytest.raises(JourneyError, match="Config file not found"):
        runner.run_pipeline(tmp_path / "nope.yaml", reports_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert runner.new_run_id("demo", pd.Timestamp("2024-03-01 12:00:05", tz="UTC")) == "demo-20240301T120005Z"


@pytest.mark.parametrize("hostile", [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '<a href="https://evil.example/x">click</a>',
    "<iframe src=//evil></iframe>", '<td style="background:url(http://x)">', "<svg onload=alert(1)>"])
def test_sanitize_html_shows_hostile_markup_as_text(hostile):
    out = report.sanitize_html(f"<table><tr><td>{hostile}</td></tr></table>")
    assert "<script" not in out and "<img src=x" not in out and "<iframe" not in out and "<svg" not in out
    assert "http" not in out.replace("https://evil.example", "") or "href" not in out
    assert "href=" not in out and "style=" not in out and "onerror=alert(1)>" not in out


def test_sanitize_keeps_tables_and_redacts_text():
    out = report.sanitize_html('<table class="dataframe"><tr><th>a</th><td>mail a.b@example.com &lt;b&gt;</td></tr></table>')
    assert out.startswith('<table class="dataframe"><tr><th>a</th><td>')
    assert "[EMAIL]" in out and "example.com" not in out and "&lt;b&gt;" in out


def test_render_markdown_escapes_raw_html():
    out = report.render_markdown("**bold** <script>alert(1)</script> [x](https://e.org)")
    assert "<strong>bold</strong>" in out and "<script" not in out and "https" not in out.split("</a>")[0].split(">")[0]


def _events():
    # customer a: s1 (0h) -> s2 (2h) -> s3 (5h); b: s1 (0h) -> s2 (4h); c: s1 only
    t = pd.Timestamp("2024-01-01", tz="UTC")
    return pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b", "c"],
        "timestamp": [t, t + pd.Timedelta(hours=2), t + pd.Timedelta(hours=5), t, t + pd.Timedelta(hours=4), t],
        "stage": ["s1", "s2", "s3", "s1", "s2", "s1"], "row_id": range(6)}).sample(frac=1, random_state=1)


def test_stage_metrics_by_hand():
    fb = pd.DataFrame({"stage": ["s1", "s1", "s2"], "sentiment": [0.5, -0.5, 0.2],
                       "rating_type": ["csat"] * 3, "rating": [5.0, 3.0, 4.0]})
    m = metrics.stage_metrics(_events(), fb, ["s1", "s2", "s3"], rating_type="csat").set_index("stage")
    assert m.loc["s1", "customers"] == 3 and m.loc["s1", "dwell_median_s"] == 3 * 3600  # dwells 2h, 4h
    assert m.loc["s2", "dwell_median_s"] == 3 * 3600 and m.loc["s2", "dwell_n"] == 1
    assert m.loc["s1", "dropoff_share"] == pytest.approx(1 / 3)       # c ends at s1
    assert m.loc["s2", "dropoff_share"] == pytest.approx(1 / 2)       # b ends at s2
    assert m.loc["s1", "sentiment_mean"] == 0 and m.loc["s1", "sentiment_se"] == pytest.approx(np.std([.5, -.5], ddof=1) / math.sqrt(2))
    assert m.loc["s1", "satisfaction_mean"] == 4
    assert list(m.index) == ["s1", "s2", "s3"]


def test_compare_flags_only_changes_beyond_uncertainty():
    prev = pd.DataFrame({"stage": ["s1", "s2"], "sentiment_mean": [0.1, 0.1], "sentiment_se": [0.01, 0.2],
                         "dwell_median_s": [3600.0, 3600.0], "dwell_median_se_s": [60.0, 60.0]})
    cur = pd.DataFrame({"stage": ["s1", "s2"], "sentiment_mean": [0.3, 0.3], "sentiment_se": [0.01, 0.2],
                        "dwell_median_s": [7200.0, 3610.0], "dwell_median_se_s": [60.0, 60.0]})
    c = metrics.compare_stage_metrics(cur, prev).set_index(["stage", "metric"])
    assert c.loc[("s1", "sentiment"), "verdict"] == "better"
    assert c.loc[("s2", "sentiment"), "verdict"] == "no clear change"       # 0.2 < 1.96 * 0.28
    assert c.loc[("s1", "dwell median"), "verdict"] == "worse"              # longer wait
    assert c.loc[("s2", "dwell median"), "verdict"] == "no clear change"
    assert metrics.compare_stage_metrics(cur, None).empty


def test_check_kpis_uses_map_then_stage_metrics():
    jm = pd.DataFrame({"segment": ["All customers", "All customers", "seg"], "stage": ["s1", "s2", "s1"],
                       "dwell_median_s": [100.0, 90000.0, 1.0]})
    per_stage = pd.DataFrame({"stage": ["s1"], "satisfaction_mean": [3.5]})
    kpis = [{"stage": "s2", "metric": "dwell_median_s", "max": 86400, "label": "wait"},
            {"stage": "s1", "metric": "dwell_median_s", "max": 86400, "label": "ok"},
            {"stage": "s1", "metric": "csat_mean", "min": 4.0, "label": "csat"},
            {"stage": "s1", "metric": "nothing", "min": 1.0, "label": "?"}]
    k = metrics.check_kpis(kpis, jm, per_stage, rating_type="csat").set_index("label")
    assert k["status"].to_dict() == {"wait": "breach", "ok": "ok", "csat": "breach", "?": "unknown"}
    assert "25 h" in k.loc["wait", "message"] and "at most 24 h" in k.loc["wait", "message"]


def test_index_lists_runs_newest_first(tmp_path):
    for rid, t in (("a", "2024-01-01T00:00:00+00:00"), ("b", "2024-02-01T00:00:00+00:00")):
        (tmp_path / rid).mkdir()
        (tmp_path / rid / "run.json").write_text(json.dumps({
            "run_id": rid, "config_name": "demo", "created_at": t, "headline": {"customers": 10, "top pain point": "<b>x</b>"},
            "kpi_breaches": 1, "kpis_checked": 2, "previous_run": None}))
    (tmp_path / ".tmp-c").mkdir()
    page = report.write_index(tmp_path).read_text()
    assert page.index("b/report.html") < page.index("a/report.html") and ".tmp-c" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert report.previous_run(tmp_path, "demo", before="2024-01-15")["run_id"] == "a"


def test_pandas_style_blocks_are_dropped_not_shown_as_text():
    from journey_analysis.report import sanitize_html

    out = sanitize_html('<style scoped>.dataframe tbody tr th {vertical-align: top;}</style><table><tr><td>x</td></tr></table>')
    assert out == "<table><tr><td>x</td></tr></table>"


def test_a_notebook_whose_kernel_dies_is_written_with_every_output_so_far(tmp_path):
    """The executed notebook is written at its start, at its end and at most every SAVE_EVERY_S seconds in
    between (not before and after every cell): when the kernel dies mid-notebook, papermill still writes it
    with the outputs of the cells that ran, and the kernel is gone."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os"),
                                         nbformat.v4.new_code_cell("print('first cell ran')"),
                                         nbformat.v4.new_code_cell("os._exit(1)"),
                                         nbformat.v4.new_code_cell("print('never')")])
    nb.metadata["kernelspec"] = {"name": runner.kernel_name(), "display_name": "k", "language": "python"}
    src, out = tmp_path / "dies.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    pm = runner._import_papermill()
    k = runner.KernelAhead(src, runner.kernel_name(), tmp_path)
    with pytest.raises(Exception):
        k.execute(pm, src, out, "immediate", kernel_name=runner.kernel_name(), progress_bar=False,
                  log_output=False, cwd=str(tmp_path), extra_arguments=list(runner.KERNEL_ARGUMENTS))
    done = nbformat.read(out, as_version=4)
    assert done.cells[1].outputs[0]["text"] == "first cell ran\n" and not done.cells[3].outputs
    assert k.km is None and not _kernel_processes()
