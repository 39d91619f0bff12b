"""Protocol checks that flag misleading grids, the learner choices of a config, and relative
paths in a config file (relative to its folder, from any working directory)."""

from __future__ import annotations

import copy
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.config import ConfigError, load_config, parse_config
from orchestrator.grid import prepare_plan
from tests.conftest import tiny_config, write_config, write_corpus


def _files(tmp_path, train: pd.DataFrame, test: pd.DataFrame) -> dict:
    train.to_parquet(tmp_path / "train.parquet")
    test.to_parquet(tmp_path / "test.parquet")
    return tiny_config(tmp_path / "train.parquet", tmp_path)


def test_classes_only_in_the_test_split_are_warned_with_the_numbers(tmp_path):
    train = pd.DataFrame({"text": [f"alpha {i}" for i in range(30)] + [f"beta {i}" for i in range(30)],
                          "label": ["a"] * 30 + ["b"] * 30})
    test = pd.DataFrame({"text": ["alpha x", "beta y", "gamma z", "gamma w"], "label": ["a", "b", "c", "c"]})
    plan = prepare_plan(parse_config(_files(tmp_path, train, test)), writing=False)
    warning = "datasets[topics]: 1 classes ('c') appear only in the test split (2 of 4 test rows)"
    assert any(w.startswith(warning) for w in plan.warnings), plan.warnings
    assert plan.dataset_warnings["topics"][0].startswith(warning)


def test_an_initial_pool_smaller_than_the_classes_is_warned(corpus, tmp_path):
    config = tiny_config(corpus, tmp_path, protocol={"initial_pool_size": 2, "query_size": 6, "cycles": 2})
    plan = prepare_plan(parse_config(config), writing=False)
    assert ("datasets[topics]: protocol.initial_pool_size 2 is smaller than its 3 classes: the first "
            "learner cannot have seen every class") in plan.warnings
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0 and "warning: datasets[topics]: protocol.initial_pool_size 2" in result.output


def test_a_learner_predicting_one_class_is_warned_and_tagged(ray_session, corpus, tmp_path):
    """C = 1 on 6 labels of L2-normalised GloVe vectors: the majority class everywhere. The
    cycles say so (predicted_classes = 1), the run is tagged, `albench run` warns."""
    config = tiny_config(corpus, tmp_path, embedders=[{"name": "glove", "model": "glove-6b-50d"}],
                         strategies=[{"name": "random"}], seeds=[0], learner={"C": 1.0},
                         protocol={"initial_pool_size": 6, "query_size": 6, "cycles": 1})
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path / "c.yaml", config))])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning: in 1 trial (1 cycle)" in text and "predicted one class for every test row" in text, text
    from orchestrator.tracking import open_tracker

    tracker = open_tracker(config["tracking"]["uri"], "tiny")
    run = next(iter(tracker.trial_runs().values()))
    assert run.metrics["single_class_cycles"] >= 1
    assert "one class for every test row" in run.tags["albench.warnings.learner"]
    assert {v for _, v in tracker.curve(run.run_id, "predicted_classes")} >= {1.0}
    assert {v for _, v in tracker.curve(run.run_id, "learner_C")} == {1.0}  # the C of every cycle
    assert {v for _, v in tracker.curve(run.run_id, "learner_searched")} == {0.0}


def test_strategies_that_need_a_linear_head_refuse_the_mlp(corpus, tmp_path):
    config = tiny_config(corpus, tmp_path, learner={"type": "mlp"},
                         strategies=[{"name": "random"}, {"name": "dropquery"}])
    with pytest.raises(ConfigError, match=r"strategies\[1\]: dropquery needs the learner's head, which "
                                          r"learner.type mlp does not provide; fix: remove it or use "
                                          r"learner.type: logistic_regression"):
        parse_config(config)
    assert parse_config(dict(config, strategies=[{"name": "badge"}])).learner.type == "mlp"


def test_validation_split_larger_than_the_pool_is_refused(corpus, tmp_path):
    config = tiny_config(corpus, tmp_path, protocol={"initial_pool_size": 6, "query_size": 6, "cycles": 3,
                                                     "validation": {"size": 290}})
    with pytest.raises(ConfigError, match="plus 290 validation rows exceed dataset 'topics'"):
        prepare_plan(parse_config(config), writing=False)


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    write_corpus(project / "data" / "train.parquet", 60, seed=1)
    write_corpus(project / "data" / "test.parquet", 30, seed=2)
    config = tiny_config(project / "data" / "train.parquet", project)
    config["datasets"][0]["source"] = {"type": "file", "train": "data/train.parquet", "test": "./data/test.parquet"}
    config["store"] = {"path": "embeddings", "checkpoints": ".albench/checkpoints"}
    config["tracking"] = {"uri": "sqlite:///results/mlflow.db"}
    path = write_config(project / "experiments.yaml", config)
    loaded = load_config(path)
    assert loaded.datasets[0].source.train == project / "data" / "train.parquet"
    assert loaded.store.path == project / "embeddings"
    assert loaded.tracking.uri == f"sqlite:///{project}/results/mlflow.db"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "orchestrator.cli", "validate", "../project/experiments.yaml"],
                            cwd=elsewhere, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = copy.deepcopy(config)
    broken["datasets"][0]["source"]["train"] = "data/missing.parquet"
    bad = write_config(project / "broken.yaml", broken)
    result = subprocess.run([sys.executable, "-m", "orchestrator.cli", "validate", str(bad.relative_to(tmp_path))],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2
    assert f"file not found: {project / 'data' / 'missing.parquet'}" in " ".join(result.stdout.split())
    assert not list(elsewhere.iterdir())  # nothing written where the command ran
