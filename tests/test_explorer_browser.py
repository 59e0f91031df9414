"""The explorer in JupyterLab, in headless Chromium: a JupyterLab server on 127.0.0.1 (started and stopped
by the test) opens a small notebook that shows the explorer over a hand-made journey map; the test runs
it, reads the first view (formatted, no NaN/None), picks another stage in the dropdown and reads the
new view. A screenshot goes to ``test-output/browser/explorer.png``. Chromium and Playwright as in
``test_report_browser.py`` (skipped outside CI when missing)."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

from test_report_browser import CHROMIUM, FLAGS, OUT, RAW, browser  # noqa: F401

SETUP = '''import pandas as pd
from journey_analysis.widgets import show_explorer
jm = pd.DataFrame({
    "segment": ["All customers"] * 3, "stage": ["awareness", "support", "renewal"], "stage_order": [0, 1, 2],
    "configured": [True] * 3, "customers": [1200, 800, 640], "share_customers": [1.0, 0.6667, 0.5333],
    "drop_off": [0.0, 0.1234, 0.0], "dwell_n": [1100, 700, 0], "dwell_median_h": [float("nan"), 30.25, float("nan")],
    "dwell_p90_h": [float("nan"), 61.5, float("nan")], "dwell_min_h": [float("nan"), 0.2, float("nan")],
    "dwell_max_h": [float("nan"), 300.0, float("nan")], "expected_max_duration_h": [168.0, 24.0, None],
    "satisfaction_mean": [float("nan"), 1.7378, 4.2], "satisfaction_n": [0, 225, 40],
    "sentiment_mean": [float("nan"), -0.5012, 0.27], "themes_negative": [None, "hold (59); agent (58)", ""],
    "themes_positive": [None, "", "fair (5)"], "missing": ["no feedback at this stage", "", ""],
    "quotes": [[], ["the helpline kept me on hold for ages"], ["the renewal offer was fair"]]})
show_explorer(jm, interactive=True, stage="awareness")'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from journey_analysis.runner import kernel_name

    root = tmp_path_factory.mktemp("lab")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SETUP)]
    kernel = kernel_name()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nbformat.write(nb, str(root / "explorer.ipynb"))
    port, token = _free_port(), "journey-test-token"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(root / ".runtime")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--allow-root", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.disable_check_xsrf=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 60 s")
        yield {"url": f"{base}/lab/tree/explorer.ipynb?token={token}"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _output_text(page) -> str:
    return page.locator(".jp-OutputArea").first.inner_text()


def test_explorer_in_jupyterlab(browser, lab):  # noqa: F811
    OUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(lab["url"], wait_until="domcontentloaded", timeout=90_000)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                           "window.jupyterapp.shell.currentWidget.sessionContext && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel", timeout=90_000)
    page.wait_for_timeout(1500)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    selects = page.locator(".jp-OutputArea select")
    selects.nth(1).wait_for(timeout=90_000)                       # segment and stage dropdowns
    page.locator(".jp-OutputArea table").first.wait_for(timeout=30_000)
    first = _output_text(page)
    assert first.count("Error displaying widget") == 1            # only where the note quotes it
    assert "run this cell" in first                                # the re-run note above the explorer
    assert "168 h" in first and "100%" in first and "1,200" in first
    selects.nth(1).select_option("support")
    page.wait_for_function("document.querySelector('.jp-OutputArea').innerText.includes('hold (59)')",
                           timeout=30_000)
    second = _output_text(page)
    page.screenshot(path=str(OUT / "explorer.png"), full_page=True)
    page.close()
    assert "67%" in second and "12%" in second and "1.7" in second and "30.2 h" in second and "24 h" in second
    assert "the helpline kept me on hold for ages" in second
    for text in (first, second):
        cells = [c for c in re.split(r"[\t\n]", text) if c.strip()]
        assert not [c for c in cells if RAW.search(c)], [c for c in cells if RAW.search(c)][:5]
