"""The package's import rules that import-linter cannot state: no module uses another module's private
(``_name``) functions, classes or constants. The layers and the absence of cycles are import-linter's
contracts in pyproject.toml (`lint-imports`, run by `make test`)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "journey_analysis"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str, module: str) -> list[str]:
    """Every use in `source` (the code of `module`) of a private name of another journey_analysis
    module: ``from journey_analysis.x import _y`` and ``x._y`` where ``x`` names an imported module
    of the package. Returns ``"line: module._name"`` strings."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # local name -> package module it refers to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "journey_analysis":
            for a in node.names:
                if _private(a.name) and node.module != module:
                    found.append(f"{node.lineno}: {node.module}.{a.name}")
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"  # may be a submodule
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "journey_analysis" and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
            target = aliases.get(node.value.id)
            if target and target != module:
                found.append(f"{node.lineno}: {target}.{node.attr}")
    return found


def test_the_checker_sees_both_forms():
    code = ("from journey_analysis.gather import _check_path, read_table\n"
            "from journey_analysis import sources as S\n"
            "import journey_analysis.steps as st\n"
            "S._apply_id(1); S.load_source(2); st._prepare(3); self._own()\n")
    assert private_uses(code, "journey_analysis.x") == [
        "1: journey_analysis.gather._check_path", "4: journey_analysis.sources._apply_id",
        "4: journey_analysis.steps._prepare"]
    assert private_uses("from journey_analysis.x import _mine\n", "journey_analysis.x") == []


def test_no_module_uses_another_modules_private_names():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        found += [f"{path.relative_to(PACKAGE.parent)}:{use}" for use in private_uses(path.read_text(), module)]
    assert not found, "private names used across modules (make them public or move the code):\n" + "\n".join(found)
