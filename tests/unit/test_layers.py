"""The runner's layers import downwards only, so there is no import cycle: cli → usecases →
store and dbt → domain; the tools beside it (demo, crm_data, bench) are never imported by it."""

from __future__ import annotations

import ast
from pathlib import Path

from runner.domain.vocabulary import PROJECT_DIR

RUNNER = PROJECT_DIR / "runner"
# What each layer may import from the runner; a module may always import its own layer.
ALLOWED = {
    "domain": {"domain"},
    "store": {"domain", "store"},
    "dbt": {"domain", "dbt"},
    "usecases": {"domain", "store", "dbt", "usecases"},
    "": {"domain", "store", "dbt", "usecases", ""},
}
TOOLS = {"demo", "crm_data", "bench"}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ""


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PROJECT_DIR).with_suffix("").parts)


def test_layers_import_downwards_only() -> None:
    wrong = []
    for path in RUNNER.rglob("*.py"):
        module = _module(path)
        for imported in _imports(path):
            if imported.split(".")[0] in TOOLS:
                wrong.append(f"{module} imports the tool {imported}")
            if not imported.startswith("runner.") or imported.count(".") < 1:
                continue
            target = imported.split(".")[1]
            target_layer = target if target in ALLOWED and target else ""
            if target_layer not in ALLOWED[_layer(module)]:
                wrong.append(f"{module} imports {imported}")
    assert wrong == []
