"""Shared fixtures: one real local Ray per test session, tiny real text datasets, configs."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.servers import mlflow_server_postgres, postgres, s3  # noqa: F401 (session fixtures)

TOPICS = {
    "sport": "match goal team player score coach league season win stadium",
    "finance": "market stock bank price profit shares investor trade rate economy",
    "science": "cell atom experiment theory energy lab research molecule physics data",
}
FILLER = "the a of and to in is was for on with that it as this by"


def write_corpus(path: Path, n: int, seed: int, topics: dict[str, str] = TOPICS) -> Path:
    """A small real text classification file: sentences mixing topic words and filler."""
    rng = np.random.default_rng(seed)
    names = sorted(topics)
    labels = rng.integers(0, len(names), size=n)
    filler = FILLER.split()
    texts = []
    for label in labels:
        words = topics[names[label]].split()
        other = topics[names[(label + 1) % len(names)]].split()
        sentence = (list(rng.choice(words, 4)) + list(rng.choice(other, 2)) + list(rng.choice(filler, 5)))
        rng.shuffle(sentence)
        texts.append(" ".join(sentence))
    pd.DataFrame({"text": texts, "label": [names[i] for i in labels]}).to_parquet(path)
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root / "test.parquet", 120, seed=2)
    return write_corpus(root / "train.parquet", 300, seed=1)


def tiny_config(corpus: Path, workdir: Path, **overrides) -> dict:
    """A tiny grid on real Parquet data with fast built-in embedders."""
    config = {
        "name": "tiny",
        "datasets": [{
            "name": "topics",
            "source": {"type": "file", "train": str(corpus), "test": str(corpus.with_name("test.parquet"))},
        }],
        "embedders": [{"name": "tfidf", "model": "tfidf-svd", "dim": 16},
                      {"name": "glove", "model": "glove-6b-50d"}],
        "protocol": {"initial_pool_size": 6, "query_size": 6, "cycles": 3},
        "strategies": [{"name": "random"}, {"name": "margin"}],
        "seeds": [0, 1],
        "tracking": {"uri": f"sqlite:///{workdir / 'mlflow.db'}"},
        "store": {"path": str(workdir / "embeddings"), "checkpoints": str(workdir / "checkpoints")},
    }
    config.update(overrides)
    return config


def run_in_process(config_dict: dict, **flags):
    """``run_grid`` in this process (on the session's Ray): plan, tracker, summary, output."""
    from rich.console import Console

    from orchestrator.config import parse_config
    from orchestrator.console import Reporter
    from orchestrator.grid import prepare_plan
    from orchestrator.runner import run_grid
    from orchestrator.tracking import open_tracker

    config = parse_config(config_dict)
    plan = prepare_plan(config)
    tracker = open_tracker(config.tracking.uri, config.experiment_name)
    console = Console(record=True, width=200)
    summary = run_grid(plan, tracker, Reporter(console), **flags)
    return plan, tracker, summary, console.export_text()


def embed_in_process(plan, store):
    """The embedding stage of every job of ``plan`` in this process: its result, its output."""
    from rich.console import Console

    from orchestrator.console import Reporter
    from orchestrator.embedding_stage import embedding_stage

    console = Console(record=True, width=200)
    result = embedding_stage(plan.jobs, plan.datasets, store, plan.config.resources, Reporter(console))
    return result, console.export_text()


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def ray_session():
    """One real local Ray for the whole test session (2 CPUs, no dashboard)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


# ------------------------------------------- long-grid fixtures (fault tolerance, one driver)


@pytest.fixture(scope="session")
def pool(tmp_path_factory) -> Path:
    """A pool large enough for long trajectories (500 queries of one row)."""
    root = tmp_path_factory.mktemp("ft-corpus")
    write_corpus(root / "test.parquet", 120, seed=2)
    return write_corpus(root / "train.parquet", 1000, seed=1)


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("ft-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ft-store") / "embeddings"
