"""Installation metadata: pyproject.toml is the source of truth; environment.yml must not drift from it."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _bounds(req: str) -> str:
    return req.strip()[len(_name(req)):].replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): _bounds(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    have = {_name(d): _bounds(d) for d in conda + pip if _name(d) not in ("python", "pip", "-e")}
    assert have == wanted, "environment.yml and pyproject.toml list different packages or bounds"
    assert pip[-1] == "-e ."
    assert "conda-forge" in env["channels"]


def test_runtime_dependencies_have_lower_bounds_and_no_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        assert ">=" in req and "==" not in req, req


def test_import_is_light():
    """`import journey_analysis` must not pull in the heavy libraries."""
    code = ("import sys, journey_analysis, journey_analysis.config, journey_analysis.gather; "
            "heavy = [m for m in ('sklearn', 'spacy', 'matplotlib', 'seaborn', 'papermill', 'pandera', 'pyspark', 'lingua') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_makefile_help_lists_the_targets():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for target in ("run", "test", "install", "validate", "demo-data", "student", "lab", "bench"):
        assert re.search(rf"^\s+{target}\s", out, re.M), target
