"""The README's "Adding things" is the code: each example is an excerpt, verbatim, of a module of
the test plug-in package (which tests/plugins/ runs, one test per plug-in and a grid of them on
Ray), and its table names every kind's entry-point group."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.plugins import registries

ROOT = Path(__file__).resolve().parents[1]
SECTION = re.search(r"### Adding things\n(.*?)\n## ", (ROOT / "README.md").read_text(), re.DOTALL).group(1)
BLOCKS = re.findall(r"```(?:python|toml)\n# (\S+)\n(.*?)```", SECTION, re.DOTALL)


def test_every_example_is_an_excerpt_of_a_tested_module():
    assert len(BLOCKS) == 7
    for path, body in BLOCKS:
        assert path.startswith("tests/plugin_pkg/")
        assert body in (ROOT / path).read_text(), f"README's {path} is not that file's text"
    named = {Path(path).stem for path, _ in BLOCKS} - {"pyproject"}
    tests = {p.stem.removeprefix("test_") for p in (ROOT / "tests" / "plugins").glob("test_*.py")}
    assert len(named) == 6 and named <= tests  # one plug-in of each kind, each with its test


def test_the_table_names_every_kinds_entry_point_group():
    groups = set(re.findall(r"\| `(albench\.[a-z_]+)` \|", SECTION))
    assert groups == set(registries())
