"""An installed package's plug-ins, one of each kind, used as a user would: listed by
``albench schema``, validated like built-ins, run end to end on a local Ray (the trajectory
actors load them from their entry points), recorded with their package and version. A plug-in
that cannot be imported is one line naming its package, and the rest works."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from orchestrator.tracking import RunStatus, open_tracker
from tests.conftest import write_corpus
from tests.plugins.installed import install

ALBENCH = [sys.executable, "-m", "orchestrator.cli"]
PLUGIN = "albench-test-plugins==0.1.0"
BROKEN = ("query strategy plug-in 'broken' (albench_test_plugins.broken:Broken) of the package "
          "'albench-test-plugins' could not be imported (ModuleNotFoundError: No module named "
          "'albench_no_such_dependency'); it is left out")


def albench(env, cwd, *args, timeout=600):
    return subprocess.run([*ALBENCH, *args], check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def grid(folder, **learner) -> dict:
    """A grid of plug-ins only, its paths relative to the config's folder."""
    return {
        "name": "plugins",
        "datasets": [{"name": "topics", "source": {"type": "jsonl", "train": "data/train.jsonl"}}],
        "embedders": [{"name": "hashed", "model": "hashing-64"}],
        "protocol": {"initial_pool_size": 6, "query_size": 6, "cycles": 3},
        "initial_pools": [{"name": "every_kth", "params": {"k": 5}}],
        "strategies": [{"name": "lowest_index"}, {"name": "margin"}],
        "learner": learner or {"type": "nearest_centroid"},
        "seeds": [0],
        "tracking": {"uri": "sqlite:///mlflow.db"},
        "store": {"path": "embeddings", "checkpoints": "checkpoints"},
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    env = install(root / "site")
    config = root / "config"
    (config / "data").mkdir(parents=True)
    frame = write_corpus(root / "train.parquet", 200, seed=1)
    import pandas as pd

    pd.read_parquet(frame).to_json(config / "data" / "train.jsonl", orient="records", lines=True)
    path = config / "plugins.yaml"
    path.write_text(yaml.safe_dump(grid(config)))
    elsewhere = root / "elsewhere"  # run from another folder: paths stay the config's
    elsewhere.mkdir()
    return env, path, elsewhere


def test_schema_lists_every_plugin_with_its_package_and_names_the_broken_one(setup):
    env, _, elsewhere = setup
    done = albench(env, elsewhere, "schema")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)["x-plugins"]
    for group, name in [("albench.strategies", "lowest_index"), ("albench.initial_pools", "every_kth"),
                        ("albench.dataset_sources", "jsonl"), ("albench.embedders", "hashing"),
                        ("albench.learners", "nearest_centroid"), ("albench.report_sections", "label_budget")]:
        assert listed[group][name] == PLUGIN, group
    assert listed["albench.strategies"]["margin"] == "albench"  # the built-ins are all there
    assert "broken" not in listed["albench.strategies"]
    assert done.stderr.strip() == f"warning: {BROKEN}; fix: reinstall or uninstall albench-test-plugins"
    assert "Traceback" not in done.stderr
    schema = json.loads(done.stdout)
    assert "JsonlSource" in schema["$defs"] and "NearestCentroidSpec" in schema["$defs"]


def test_plugins_are_validated_like_builtins(setup):
    env, path, elsewhere = setup
    config = yaml.safe_load(path.read_text())
    config["initial_pools"][0]["params"] = {"k": 0}
    config["datasets"][0]["source"]["tain"] = "x"
    out = _invalid(env, path.with_name("bad.yaml"), config, elsewhere)
    assert "initial_pools[0].params.k: must be an int >= 1, got 0 (initial pool 'every_kth')" in out
    assert "datasets[0].source.tain: unknown field" in out  # the field as the user writes it
    config = yaml.safe_load(path.read_text())
    config["strategies"].append({"name": "dropquery"})  # needs a linear head: the learner has none
    out = _invalid(env, path.with_name("head.yaml"), config, elsewhere)
    assert ("strategies[2]: dropquery needs the learner's head, which learner.type nearest_centroid "
            "does not provide; fix: remove it or use learner.type: logistic_regression") in out


def _invalid(env, path, config, cwd) -> str:
    """``albench validate --offline`` of ``config``: it exits 2; its output on one line."""
    path.write_text(yaml.safe_dump(config))
    done = albench(env, cwd, "validate", "--offline", str(path))
    assert done.returncode == 2, done.stdout
    return " ".join(done.stdout.split())


def test_a_grid_of_plugins_runs_on_ray_and_records_them(setup):
    env, path, elsewhere = setup
    done = albench(env, elsewhere, "run", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert BROKEN in " ".join(done.stdout.split())  # said once, the run went on
    tracker = open_tracker(f"sqlite:///{path.parent / 'mlflow.db'}", "plugins", create=False)
    runs = tracker.trial_runs()
    assert len(runs) == 2 and {run.status for run in runs.values()} == {RunStatus.FINISHED}
    for run in runs.values():
        assert [step for step, _ in tracker.curve(run.run_id)] == [6, 12, 18, 24]
        assert run.params["plugin.initial_pools.every_kth"] == PLUGIN
        assert run.params["plugin.learners.nearest_centroid"] == PLUGIN
        assert run.params["plugin.dataset_sources.jsonl"] == PLUGIN
        assert run.params["plugin.embedders.hashing"] == PLUGIN
    by_strategy = {run.params["strategy"]: run for run in runs.values()}
    assert by_strategy["lowest_index"].params["plugin.strategies.lowest_index"] == PLUGIN
    assert "plugin.strategies.margin" not in by_strategy["margin"].params
    report = (path.parent / "reports" / "plugins" / "index.html").read_text()
    assert "Finished trials per strategy (a plug-in&#x27;s section)" in report or \
        "Finished trials per strategy (a plug-in's section)" in report
    assert "lowest_index: 1, margin: 1" in report


KEYS = """
import sys
from orchestrator.config import load_config
from orchestrator.grid import prepare_plan
print(' '.join(t.trial_key for t in prepare_plan(load_config(sys.argv[1]), writing=False).trials))
"""


def test_a_plugins_version_changes_the_trial_key(setup, tmp_path):
    _, path, elsewhere = setup
    keys = []
    for version in ("0.1.0", "0.2.0"):
        env = install(tmp_path / version, version)
        done = subprocess.run([sys.executable, "-c", KEYS, str(path)], check=False, env=env, cwd=elsewhere,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        keys.append(done.stdout.split())
    assert len(keys[0]) == 2 and not set(keys[0]) & set(keys[1])
