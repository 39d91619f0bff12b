"""Embedding quality, measured by albench itself: the grid's learner trained on the whole pool of
a (dataset, embedder), scored (accuracy) on its test split.

Computed once per (store key, learner) and cached in a small JSON file (``quality.json`` next to
the report), so a report rebuilt while a grid runs does not refit anything. An entry not in the
store yet (or damaged) is a message, never an error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from workers.files import atomic_write
from workers.hashing import content_hash
from workers.specs import RESULT_VERSION
from workers.store import EmbeddingStore, StoreCorruptionError

CACHE_NAME = "quality.json"


def measure(jobs, learner_spec, store_root: str | Path, cache_path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Quality per (dataset, embedder) of ``jobs``: a table (dataset, embedder, quality, train_rows,
    test_rows, store_key, cached) and the messages for entries that could not be measured."""
    from threadpoolctl import threadpool_limits

    from workers.learners import make_learner
    from workers.metrics import accuracy

    store = EmbeddingStore(store_root)
    cache = _read_cache(cache_path)
    learner_json = json.dumps(learner_spec.model_dump(mode="json"), sort_keys=True)
    rows, messages, changed = [], [], False
    for job in jobs:
        key = store.find(job)
        if key is None:
            messages.append(f"{job.dataset_name} / {job.embedder.name}: embeddings not in the store "
                            f"({store_root}); `albench embed CONFIG` computes them")
            continue
        address = content_hash(key, ":learner=", learner_json, f":result_version={RESULT_VERSION}")
        entry = cache.get(address)
        cached = entry is not None
        if entry is None:
            try:
                train = store.read(job.dataset_name, job.embedder.name, key, "train")
                test = store.read(job.dataset_name, job.embedder.name, key, "test")
            except (StoreCorruptionError, OSError) as exc:
                messages.append(f"{job.dataset_name} / {job.embedder.name}: store entry unreadable ({exc})")
                continue
            train_x = np.asarray(train.embeddings, dtype=np.float32)
            test_x = np.asarray(test.embeddings, dtype=np.float32)
            n_classes = int(max(train.labels.max(), test.labels.max())) + 1
            with threadpool_limits(limits=1):  # as in a trajectory: deterministic, no oversubscription
                head = make_learner(learner_spec, n_classes, train_x, 0).fit(train_x, train.labels)
                predicted = head.logits(test_x).argmax(axis=1)
            entry = {"dataset": job.dataset_name, "embedder": job.embedder.name, "store_key": key,
                     "learner": learner_json, "quality": accuracy(test.labels, predicted),
                     "train_rows": len(train_x), "test_rows": len(test_x)}
            cache[address] = entry
            changed = True
        rows.append({"dataset": job.dataset_name, "embedder": job.embedder.name, "quality": entry["quality"],
                     "train_rows": entry["train_rows"], "test_rows": entry["test_rows"],
                     "store_key": key, "cached": cached})
    if changed:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache_path) as temporary:
            temporary.write_text(json.dumps(cache, indent=1, sort_keys=True))
    return pd.DataFrame(rows, columns=["dataset", "embedder", "quality", "train_rows", "test_rows",
                                       "store_key", "cached"]), messages


def _read_cache(path: Path) -> dict:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
