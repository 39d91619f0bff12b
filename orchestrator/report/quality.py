"""Embedding quality, measured by albench itself, several ways, per (dataset, embedder):

- ``accuracy``: the grid's learner (its ``learner`` block, with its C search) trained on the
  whole labelled pool, scored on the test split; ``majority`` the test split's majority-class
  rate; ``quality`` = (accuracy - majority) / (1 - majority), the share of the headroom above
  guessing the majority class that the embedding reaches, so datasets of different difficulty
  are on one scale; ``rank_in_dataset`` the embedder's rank on its dataset (1 = best).
- ``few_shot``: an MTEB-style few-labels probe: the same learner on 8 labelled rows per class
  (``FEW_SHOT_PER_CLASS``), test accuracy, the mean over 10 draws (``FEW_SHOT_DRAWS``).
- label-free: ``rankme`` (Garrido et al. 2023: exp of the entropy of the normalised singular
  values of the embedding matrix, an effective rank) and ``alpha_req`` (Agrawal et al. 2022: the
  decay exponent of the covariance eigenvalues, fitted on log-log axes), on at most
  ``SPECTRUM_ROWS`` rows of the pool.

None of them is an upper bound of what a strategy can reach (a learner on the whole pool is not
an oracle for a learner on 220 chosen rows). Computed once per (store entry, learner, measure
version) and cached in ``quality.json`` beside the report, keyed by readable text
(``dataset / embedder / store key / learner / version``), so a report rebuilt while a grid runs
refits nothing. An entry not in the store yet (or damaged) is a message, never an error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from workers.files import atomic_write
from workers.specs import RESULT_VERSION
from workers.store import EmbeddingStore, StoreCorruptionError

CACHE_NAME = "quality.json"
MEASURES_VERSION = 2
"""Bumped when a measure changes: older cache entries are not reused."""
FEW_SHOT_PER_CLASS = 8
FEW_SHOT_DRAWS = 10
SPECTRUM_ROWS = 2000
COLUMNS = ["dataset", "embedder", "quality", "accuracy", "majority", "rank_in_dataset", "few_shot", "rankme",
           "alpha_req", "train_rows", "test_rows", "store_key", "cached"]


def cache_key(dataset: str, embedder: str, store_key: str, learner_json: str) -> str:
    """The cache's key of one measurement, readable: what it was measured on and with."""
    return (f"{dataset} / {embedder} / store {store_key} / learner {learner_json} / result version "
            f"{RESULT_VERSION} / measures {MEASURES_VERSION}")


def rankme(x: np.ndarray) -> float:
    """RankMe: exp(-sum p log p) of the singular values p = s / sum(s) (an effective rank)."""
    s = np.linalg.svd(np.asarray(x, dtype=np.float64), compute_uv=False)
    p = s / s.sum() + 1e-12
    return float(np.exp(-(p * np.log(p)).sum()))


def alpha_req(x: np.ndarray) -> float:
    """alpha-ReQ: minus the slope of log eigenvalue against log rank of the centred covariance."""
    x = np.asarray(x, dtype=np.float64)
    eig = np.linalg.svd(x - x.mean(axis=0), compute_uv=False) ** 2
    eig = eig[eig > eig[0] * 1e-12]
    if len(eig) < 3:
        return float("nan")
    slope = np.polyfit(np.log(np.arange(1, len(eig) + 1)), np.log(eig), 1)[0]
    return float(-slope)


def few_shot(learner_spec, train_x, train_y, test_x, test_y, n_classes: int) -> float:
    """Mean test accuracy of the learner on ``FEW_SHOT_PER_CLASS`` rows per class, over
    ``FEW_SHOT_DRAWS`` seeded draws."""
    from workers.learners import make_learner
    from workers.metrics import accuracy

    found = []
    for draw in range(FEW_SHOT_DRAWS):
        rng = np.random.default_rng(draw)
        rows = np.concatenate([rng.permutation(np.flatnonzero(train_y == c))[:FEW_SHOT_PER_CLASS]
                               for c in np.unique(train_y)])
        head = make_learner(learner_spec, n_classes, train_x, draw).fit(train_x[rows], train_y[rows])
        found.append(accuracy(test_y, head.logits(test_x).argmax(axis=1)))
    return float(np.mean(found))


def _measure_one(learner_spec, train, test) -> dict:
    from workers.learners import make_learner
    from workers.metrics import accuracy

    train_x = np.asarray(train.embeddings, dtype=np.float32)
    test_x = np.asarray(test.embeddings, dtype=np.float32)
    n_classes = int(max(train.labels.max(), test.labels.max())) + 1
    head = make_learner(learner_spec, n_classes, train_x, 0).fit(train_x, train.labels)
    found = accuracy(test.labels, head.logits(test_x).argmax(axis=1))
    majority = float(np.bincount(test.labels).max() / len(test.labels))
    sample = train_x[np.random.default_rng(0).permutation(len(train_x))[:SPECTRUM_ROWS]]
    return {"accuracy": found, "majority": majority,
            "quality": (found - majority) / (1 - majority) if majority < 1 else 0.0,
            "few_shot": few_shot(learner_spec, train_x, train.labels, test_x, test.labels, n_classes),
            "rankme": rankme(sample), "alpha_req": alpha_req(sample),
            "train_rows": len(train_x), "test_rows": len(test_x)}


def measure(jobs, learner_spec, store_root: str | Path, cache_path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Quality per (dataset, embedder) of ``jobs``: a table (``COLUMNS``) and the messages for
    entries that could not be measured."""
    from threadpoolctl import threadpool_limits

    store = EmbeddingStore(store_root)
    cache = _read_cache(cache_path)
    learner_json = json.dumps(learner_spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    rows, messages, changed = [], [], False
    for job in jobs:
        key = store.find(job)
        if key is None:
            messages.append(f"{job.dataset_name} / {job.embedder.name}: embeddings not in the store "
                            f"({store_root}); `albench embed CONFIG` computes them")
            continue
        address = cache_key(job.dataset_name, job.embedder.name, key, learner_json)
        entry = cache.get(address)
        cached = entry is not None
        if entry is None:
            try:
                train = store.read(job.dataset_name, job.embedder.name, key, "train")
                test = store.read(job.dataset_name, job.embedder.name, key, "test")
            except (StoreCorruptionError, OSError) as exc:
                messages.append(f"{job.dataset_name} / {job.embedder.name}: store entry unreadable ({exc})")
                continue
            with threadpool_limits(limits=1):  # as in a trajectory: deterministic, no oversubscription
                entry = {"dataset": job.dataset_name, "embedder": job.embedder.name, "store_key": key,
                         "learner": learner_json, **_measure_one(learner_spec, train, test)}
            cache[address] = entry
            changed = True
        rows.append({**{c: entry.get(c) for c in COLUMNS}, "store_key": key, "cached": cached})
    if changed:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache_path) as temporary:
            temporary.write_text(json.dumps(cache, indent=1, sort_keys=True))
    table = pd.DataFrame(rows, columns=COLUMNS)
    if len(table):
        table["rank_in_dataset"] = table.groupby("dataset")["quality"].rank(ascending=False)
    return table, messages


def _read_cache(path: Path) -> dict:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
