"""The house rules that can be checked by reading the code: imports point one way
(orchestrator -> workers -> strategies) and no module grows past about 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["strategies", "workers", "orchestrator"]
"""Lowest first: a package may import only from itself and the layers before it."""
MAX_LINES = 420


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_imports_point_one_way(package):
    above = set(LAYERS[LAYERS.index(package) + 1 :])
    wrong = {str(path.relative_to(ROOT)): sorted(imported_packages(path) & above)
             for path in modules(package) if imported_packages(path) & above}
    assert not wrong, f"{package} imports from a layer above it: {wrong}"


@pytest.mark.parametrize("package", LAYERS)
def test_no_module_is_cramped(package):
    long = {str(path.relative_to(ROOT)): n for path in modules(package)
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"
