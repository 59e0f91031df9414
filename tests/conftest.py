"""Shared fixtures: the five notebooks run once per test session (per xdist worker) on 500 demo
customers (``demo``) and a second time on the same data (``second``), for the notebook, report and
browser tests."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from journey_analysis import artifacts, runner
from journey_analysis.config import DEMO_CONFIG

NASTY = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "jo.bloggs@example.com"]


def _config(folder: Path, raw: Path, name: str, extra: str = "") -> Path:
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    text = text.replace("../data/raw/demo_later/", str(raw / "later") + "/")     # the living map's later period
    text = text.replace("../data/raw/demo/", str(raw) + "/").replace("name: demo\n", f"name: {name}\n")
    path = folder / f"{name}{extra and '-' + str(abs(hash(extra)) % 1000)}.yaml"
    path.write_text(text + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """Write 500 demo customers (with hostile feedback texts), run the pipeline once."""
    from journey_analysis.datasets import write_demo

    root = tmp_path_factory.mktemp("pipeline")
    raw = root / "raw"
    paths = write_demo(raw, n_customers=500, seed=0)
    write_demo(raw / "later", n_customers=500, seed=1, period=1)      # the living map's later period
    fb = pd.read_csv(paths["feedback"], dtype=str, keep_default_na=False)
    has_text = fb.index[fb["text"].str.len() > 0][:40]
    fb.loc[has_text, "text"] = fb.loc[has_text, "text"] + " " + " ".join(NASTY) + " call 07700 900123"
    fb.to_csv(paths["feedback"], index=False, compression="gzip")
    config = _config(root, raw, "demo500")
    reports, processed = root / "reports", root / "processed"
    result = runner.run_pipeline(config, run_id="first", reports_dir=reports, processed_dir=processed,
                                 extra_parameters={"n_boot": 50}, progress=False)
    records = {stem: artifacts.read_records(result.folder / f"{stem}.ipynb") for stem in runner.NOTEBOOKS}
    truth = json.loads(paths["truth"].read_text())
    return {"root": root, "raw": raw, "config": config, "reports": reports, "processed": processed,
            "result": result, "records": records, "truth": truth}


@pytest.fixture(scope="session")
def second(demo):
    """A second run of the same config (k fixed to the first run's k to keep the test fast)."""
    k = demo["records"]["03_segment"]["k"]
    cfg = _config(demo["root"], demo["raw"], "demo500", extra="")
    text = cfg.read_text().replace("segmentation: {k: auto,", f"segmentation: {{k: {k},")
    cfg2 = demo["root"] / "demo500-second.yaml"
    cfg2.write_text(text)
    return runner.run_pipeline(cfg2, run_id="second", reports_dir=demo["reports"], processed_dir=demo["processed"],
                               extra_parameters={"n_boot": 20}, progress=False)
