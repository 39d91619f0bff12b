"""The test plug-in package (tests/plugin_pkg) as pip would leave it installed: its .dist-info,
with the entry points of its pyproject.toml, written into a folder that goes on PYTHONPATH with
the package's sources, so importlib.metadata finds it in the driver and in every Ray worker
(workers inherit the driver's environment)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from strategies.registry import Registry

PACKAGE = Path(__file__).resolve().parents[1] / "plugin_pkg"
ROOT = PACKAGE.parents[1]


def registered(registry: Registry, name: str, thing) -> Registry:
    """A new registry of ``registry``'s kind (its check included) holding ``thing`` as ``name``,
    as its entry point registers it: this session's registries have read no entry point of the
    test package (its plug-ins run as registered ones in test_plugin_grid.py, in subprocesses)."""
    fresh = type(registry)(registry.kind, registry.group, registry.check)
    fresh.add(name, thing)
    return fresh


def install(target: Path, version: str | None = None) -> dict[str, str]:
    """Write the .dist-info into ``target`` (``version`` overrides the pyproject's); the
    environment that sees the package (PYTHONPATH: its sources, ``target``, albench)."""
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    version = version or project["version"]
    dist = target / f"{project['name'].replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items()) + "\n"
        for group, entries in project["entry-points"].items()))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE), str(target), str(ROOT)])
    return env
