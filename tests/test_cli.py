"""The `journey` command: help that reads well, demo data, validate on the demo config."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from journey_analysis.cli import main
from journey_analysis.config import DEMO_CONFIG, RAW_DIR


def test_help_names_every_command_and_the_exit_codes():
    proc = subprocess.run([sys.executable, "-m", "journey_analysis.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for word in ("demo-data", "validate", "run", "student", "Exit codes", "--debug"):
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
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (RAW_DIR / "demo").iterdir()}
    assert before == after
