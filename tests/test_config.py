"""Config validation: each malformed config gives an error naming the field and the fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from orchestrator.config import ConfigError, load_config, parse_config
from tests.conftest import tiny_config

BASE = tiny_config(Path("/data/train.parquet"), Path("/work"))


def broken(mutate) -> dict:
    config = copy.deepcopy(BASE)
    mutate(config)
    return config


CASES = [
    ("missing name", lambda c: c.pop("name"), r"name: required field is missing"),
    ("unknown top-level field", lambda c: c.update(strategy=[]), r"strategy: unknown field"),
    ("unknown strategy", lambda c: c["strategies"].append({"name": "magrin"}),
     r"strategies\[2\]\.name: unknown query strategy 'magrin'; valid names: .*margin"),
    ("unknown initial pool", lambda c: c.update(initial_pools=[{"name": "margin"}]),
     r"initial_pools\[0\]\.name: unknown initial pool 'margin'; valid names: .*random"),
    ("unknown strategy parameter", lambda c: c["strategies"][0].update(params={"k": 3}),
     r"strategies\[0\]\.params\.k"),
    ("negative query size", lambda c: c["protocol"].update(query_size=0),
     r"protocol\.query_size: Input should be greater than or equal to 1"),
    ("cycles and budget", lambda c: c["protocol"].update(budget=24),
     r"protocol: give protocol.cycles or protocol.budget, not both"),
    ("budget not a multiple", lambda c: (c["protocol"].pop("cycles"), c["protocol"].update(budget=20)),
     r"protocol: protocol.budget \(20\) minus initial_pool_size"),
    ("no seeds", lambda c: c.update(seeds=[]), r"seeds: List should have at least 1 item"),
    ("duplicate seeds", lambda c: c.update(seeds=[1, 1]), r"seeds: seeds must be distinct"),
    ("bad dataset source type", lambda c: c["datasets"][0]["source"].update(type="ftp"),
     r"datasets\[0\]\.source: Input tag 'ftp'"),
    ("unknown dataset field", lambda c: c["datasets"][0].update(labels="x"),
     r"datasets\[0\]\.labels: unknown field"),
    ("bad embedder batch size", lambda c: c["embedders"][0].update(batch_size="big"),
     r"embedders\[0\]\.batch_size: Input should be a valid integer"),
    ("bad precision", lambda c: c["embedders"][1].update(precision="int3"),
     r"embedders\[1\]\.precision: Input should be 'auto', 'float32', 'float16' or 'bfloat16'"),
    ("duplicate embedder names", lambda c: c["embedders"].append(dict(c["embedders"][0])),
     r"  embedders\[2\]: duplicate entry 'tfidf' \(also embedders\[0\]\); give each a unique name"),
    ("two bad parameters of one strategy",
     lambda c: c["strategies"].append({"name": "dropquery", "params": {"n_drops": 0, "drop_rate": 2}}),
     (r"  strategies\[2\]\.params\.n_drops: must be an int >= 1, got 0 \(query strategy 'dropquery'\)\n"
      r"  strategies\[2\]\.params\.drop_rate: must be a number > 0\.0 and < 1\.0, got 2")),
    ("problems in two strategies", lambda c: c["strategies"].extend([{"name": "badgee"}, {"name": "x"}]),
     r"2 problem\(s\).*\n  strategies\[2\]\.name: unknown.*\n  strategies\[3\]\.name: unknown query strategy 'x'"),
    ("bad name characters", lambda c: c["datasets"][0].update(name="my data/set"),
     r"datasets\[0\]\.name: String should match pattern"),
    ("negative learner C", lambda c: c.update(learner={"C": -1}),
     r"  learner\.C: C must be a positive number or auto"),
    ("bad device", lambda c: c.update(resources={"strategy_device": "tpu"}),
     r"resources\.strategy_device: String should match pattern"),
]


@pytest.mark.parametrize("title,mutate,message", CASES, ids=[c[0] for c in CASES])
def test_malformed_config_names_the_field(title, mutate, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(broken(mutate), "experiments.yaml")


def test_valid_base_config_parses():
    config = parse_config(copy.deepcopy(BASE))
    assert config.n_trials == 1 * 2 * 1 * 2 * 2
    assert config.protocol.n_cycles == 3 and config.protocol.final_labelled == 24


def test_strategy_defaults_are_resolved_into_params():
    config = parse_config(copy.deepcopy(BASE))
    assert [s.name for s in config.strategies] == ["random", "margin"]


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")


def test_yaml_cannot_execute_code(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(evil)


def test_environment_variables_in_paths_are_expanded_like_the_home_folder(tmp_path, monkeypatch):
    """$VAR and ${VAR} in path fields become the variable's value (as ~ becomes the home
    folder), $$ a dollar sign; never a folder literally called ${VAR}."""
    monkeypatch.setenv("ALBENCH_TEST_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = copy.deepcopy(BASE)
    config["datasets"][0]["source"]["train"] = "${ALBENCH_TEST_DATA}/train.parquet"
    config["store"] = {"path": "$ALBENCH_TEST_DATA/store", "checkpoints": "~/ckpt$$"}
    config["tracking"] = {"uri": "sqlite:///${ALBENCH_TEST_DATA}/mlflow.db"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    loaded = load_config(path)
    assert loaded.datasets[0].source.train == tmp_path / "data" / "train.parquet"
    assert loaded.store.path == tmp_path / "data" / "store"
    assert loaded.store.checkpoints == tmp_path / "home" / "ckpt$"
    assert loaded.tracking.uri == f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}"


def test_default_experiments_yaml_is_valid():
    config = load_config("experiments.yaml")
    assert len(config.embedders) >= 3 and len(config.datasets) >= 3


def test_schema_lists_every_strategy_with_its_parameters():
    from orchestrator.config import config_schema
    from strategies import INITIAL_POOLS, QUERY_STRATEGIES

    schema = config_schema()
    assert set(schema["x-query-strategies"]) == set(QUERY_STRATEGIES.names())
    assert set(schema["x-initial-pools"]) == set(INITIAL_POOLS.names())
    assert "name" in schema["properties"] and "strategies" in schema["properties"]
