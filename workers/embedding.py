"""The embedding stage's unit of work: embed one dataset with one embedder into the store."""

from __future__ import annotations

import time
from dataclasses import dataclass

from workers.datasets import TextDataset
from workers.embedders import load_embedder
from workers.specs import EmbedderSpec
from workers.store import EmbeddingStore


@dataclass(frozen=True)
class EmbeddingJob:
    """One missing (embedder, dataset) entry of the store."""

    dataset_name: str
    embedder: EmbedderSpec
    key: str
    identity: str
    dataset_fingerprint: str


def pick_device() -> str:
    """``cuda`` when this worker sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def embed_into_store(job: EmbeddingJob, dataset: TextDataset, store_root: str, threads: int = 0) -> dict:
    """Fit (where the embedder fits on the pool), encode both splits, write them atomically."""
    import torch

    if threads:
        torch.set_num_threads(threads)  # Ray reuses worker processes: set it every time
    device = pick_device()
    began = time.perf_counter()
    embedder = load_embedder(job.embedder, device)
    embedder.fit(dataset.train_texts)
    store = EmbeddingStore(store_root)
    metadata = {
        "model": job.embedder.model,
        "embedder_identity": job.identity,
        "normalize": job.embedder.normalize,
        "dataset_fingerprint": job.dataset_fingerprint,
        "albench_version": _albench_version(),
        "precision": getattr(embedder, "precision", "float32"),
        "trust_remote_code": job.embedder.trust_remote_code,
    }
    rows = 0
    try:
        for split, texts, labels in (
            ("train", dataset.train_texts, dataset.train_labels),
            ("test", dataset.test_texts, dataset.test_labels),
        ):
            vectors = embedder.encode(texts)
            store.write(job.dataset_name, job.embedder.name, job.key, split, vectors, labels,
                        metadata, dtype=job.embedder.store_dtype)
            rows += len(texts)
    except BaseException:
        # Each file is written by rename; an entry is both splits: never leave half of one.
        store.remove(job.dataset_name, job.embedder.name, job.key)
        raise
    seconds = time.perf_counter() - began
    return {"dataset": job.dataset_name, "embedder": job.embedder.name, "rows": rows,
            "seconds": seconds, "device": device}


def _albench_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("albench")
    except PackageNotFoundError:
        return "unknown"
