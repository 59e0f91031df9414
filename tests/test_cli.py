"""The `journey` command: help that reads well, demo data, validate on the demo config."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from journey_analysis.cli import main
from journey_analysis.config import DEMO_CONFIG, RAW_DIR
from journey_analysis.errors import JourneyError

GOOD = Path(__file__).resolve().parent / "data" / "good"


def test_help_names_every_command_and_the_exit_codes():
    proc = subprocess.run([sys.executable, "-m", "journey_analysis.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for word in ("demo-data", "init", "validate", "run", "student", "Exit codes", "--debug"):
        assert word in proc.stdout


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: journey" in capsys.readouterr().out


def test_demo_data_is_byte_identical_for_a_seed(tmp_path, capsys):
    assert main(["demo-data", "--out", str(tmp_path / "a"), "--customers", "300", "--seed", "3"]) == 0
    assert main(["demo-data", "--out", str(tmp_path / "b"), "--customers", "300", "--seed", "3"]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert {"events.csv.gz", "customers.csv.gz", "feedback.csv.gz", "truth.json"} <= set(names)
    digest = lambda d: [hashlib.sha256((d / n).read_bytes()).hexdigest() for n in names]  # noqa: E731
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    truth = json.loads((tmp_path / "a" / "truth.json").read_text())
    assert truth["n_customers"] == 300 and truth["seed"] == 3


def test_validate_passes_on_the_demo_config(capsys):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (RAW_DIR / "demo").iterdir()}
    assert main(["validate", "--config", str(DEMO_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "Usable." in out and "5,000" in out
    # the language mix the run will report, from a seeded sample (validate scores nothing)
    assert "Languages of the comments (a seeded sample of 2,000 of " in out
    assert "language [en: " in out.split("Languages of the comments")[1]
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (RAW_DIR / "demo").iterdir()}
    assert before == after


def test_a_second_run_with_the_same_run_id_is_refused_while_the_first_runs(tmp_path):
    import os

    from journey_analysis.runner import acquire_lock

    lock = acquire_lock(tmp_path, "r1")
    assert lock.read_text().strip() == str(os.getpid())
    with pytest.raises(JourneyError, match="Run 'r1' is already running"):
        acquire_lock(tmp_path, "r1")
    lock.unlink()
    # a lock left by a process that is gone is taken over
    (tmp_path / ".lock-r2").write_text("999999999\n")
    assert acquire_lock(tmp_path, "r2").read_text().strip() == str(os.getpid())


def test_an_interrupted_run_removes_its_temporary_folder(tmp_path, monkeypatch):
    import papermill

    from journey_analysis.runner import run_pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(GOOD / "config.yaml", run_id="cut", reports_dir=tmp_path / "reports",
                     processed_dir=tmp_path / "processed", progress=False)
    left = sorted(p.name for p in (tmp_path / "reports").iterdir())
    assert left == []                                   # no .tmp-cut, no lock, no half-built report
