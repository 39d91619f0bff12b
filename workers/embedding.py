"""The embedding stage's workers: ``EmbeddingActor`` (one per embedder and device: loads the model
once, embeds every dataset given to it, shard by shard, resuming at the first missing shard) and
``embed_into_store`` (one dataset in one call, the same code path).

Sentence-transformers embedders get length-sorted batches cut by a token budget, with lengths
rounded up to a multiple of ``LENGTH_MULTIPLE`` (and, on GPUs, padded to it), so few distinct
shapes reach the device."""

from __future__ import annotations

import math
import re
import sys
import time
from dataclasses import dataclass

import numpy as np

from workers.datasets import TextDataset
from workers.embedders import load_embedder
from workers.specs import EmbedderSpec
from workers.store import EmbeddingStore, store_key

DEFAULT_SHARD_ROWS = 20_000
"""Rows per store shard: a killed job loses at most one shard of work."""
DEFAULT_TOKEN_BUDGET = 16_384
"""Padded tokens per batch (rows x rounded length) for sentence-transformers embedders."""
LENGTH_MULTIPLE = 16
"""Batch lengths are rounded up (and padded) to a multiple of this: a bounded set of shapes."""
LOADS = {"count": 0}
"""Models loaded by this process (the tests check that one actor loads its model once)."""


@dataclass(frozen=True)
class EmbeddingJob:
    """One missing (embedder, dataset) entry of the store."""

    dataset_name: str
    embedder: EmbedderSpec
    key: str
    identity: str
    dataset_fingerprint: str

    def store_key(self, precision: str) -> str:
        """The store address: ``key`` where the identity names its precision, else ``key`` with
        the precision 'auto' resolved to on the device (fp32 and bf16 vectors never share one).
        The trial key keeps ``key``."""
        return store_key(self.key, self.identity, precision)


def pick_device() -> str:
    """``cuda`` when this worker sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class EmbeddingActor:
    """One embedder on one device: the model is loaded once, by the first call, and kept.

    (Not in the constructor: an embedder that cannot load fails its calls with its own
    ``EmbedderError``, which is not retried, instead of killing and restarting the actor.)"""

    def __init__(self, spec: EmbedderSpec, threads: int = 0) -> None:
        self.spec = spec
        self.threads = threads
        self._embedder = None
        self.device = "unknown"
        self.load_seconds = 0.0
        self.precision = "unknown"
        self.torch_threads = 0

    @property
    def embedder(self):
        if self._embedder is None:
            import torch

            if self.threads:
                torch.set_num_threads(self.threads)  # Ray reuses worker processes: set it
            self.torch_threads = torch.get_num_threads()
            self.device = pick_device()
            began = time.perf_counter()
            embedder = load_embedder(self.spec, self.device)
            LOADS["count"] += 1
            self.load_seconds = time.perf_counter() - began
            self.precision = getattr(embedder, "precision", "float32")
            if self.device != "cpu":  # bounds the shapes cuDNN plans; on CPU padding only costs
                _pad_to_multiple(embedder)
            self._embedder = embedder
        return self._embedder

    def info(self) -> dict:
        self.embedder  # noqa: B018 (loads the model)
        import os

        env = self.spec.runtime_env.env_vars if self.spec.runtime_env else {}
        return {"device": self.device, "precision": self.precision, "loads": LOADS["count"],
                "load_seconds": self.load_seconds, "threads": self.torch_threads,
                "env": {k: os.environ.get(k) for k in env},
                "packages": pinned_versions(self.spec)}

    def embed(self, job: EmbeddingJob, dataset: TextDataset, store_root: str,
              shard_rows: int = DEFAULT_SHARD_ROWS, token_budget: int = DEFAULT_TOKEN_BUDGET,
              quiet: bool = False, only: list[tuple[str, int]] | None = None,
              manifest: bool = True) -> dict:
        """Fit on the pool where the embedder fits, embed both splits shard by shard (shards that
        verify are kept: a rerun resumes at the first missing one), then write the manifest.

        ``only``: embed just these ``(split, index)`` shards (data-parallel: the stage spreads one
        dataset's shards over several actors of the embedder) and leave the manifest to a last call
        with ``only=[]``, which verifies every shard and makes the entry visible."""
        began = time.perf_counter()
        store = EmbeddingStore(store_root)
        embedder = self.embedder
        key = job.store_key(self.precision)
        metadata = {
            "model": job.embedder.model,
            "embedder_identity": job.identity,
            "normalize": job.embedder.normalize,
            "dataset_fingerprint": job.dataset_fingerprint,
            "albench_version": _albench_version(),
            "precision": self.precision,
            "device": self.device,
            "trust_remote_code": job.embedder.trust_remote_code,
        }
        if job.embedder.runtime_env and job.embedder.runtime_env.pip:
            metadata["packages"] = pinned_versions(job.embedder)  # what Ray installed for it
        name = f"{job.dataset_name} x {job.embedder.name}"
        layout = shard_layout(len(dataset.train_texts), len(dataset.test_texts), shard_rows)
        wanted = None if only is None else set(map(tuple, only))
        if wanted is None or wanted:
            embedder.fit(dataset.train_texts)
        total = sum(rows for split, index, _, rows in layout
                    if wanted is None or (split, index) in wanted)
        done = kept = written = 0
        verified: dict[tuple[str, int], str] = {}
        for split, index, start, rows in layout:
            if wanted is not None and (split, index) not in wanted:
                continue
            texts, labels = ((dataset.train_texts, dataset.train_labels) if split == "train"
                             else (dataset.test_texts, dataset.test_labels))
            checksum = store.shard_checksum(job.dataset_name, job.embedder.name, key, split,
                                            index, rows)
            if checksum is not None:
                kept += rows
            else:
                vectors = encode_batched(embedder, list(texts[start:start + rows]), token_budget)
                checksum = store.write_shard(
                    job.dataset_name, job.embedder.name, key, split, index, start, vectors,
                    np.asarray(labels[start:start + rows]), metadata, dtype=job.embedder.store_dtype)
                written += rows
            verified[(split, index)] = checksum  # verified now: the manifest does not read it again
            done += rows
            if not quiet:
                seconds = time.perf_counter() - began
                rate = written / seconds if written else 0.0
                eta = (total - done) / rate if rate else 0.0
                print(f"[embed] {name} {split} shard {index}: {done}/{total} texts, "
                      f"{rate:,.0f} texts/s, ETA {eta:,.0f} s", file=sys.stderr, flush=True)
        if manifest:
            counts = {split: [rows for s, _, _, rows in layout if s == split]
                      for split in ("train", "test")}
            store.write_manifest(job.dataset_name, job.embedder.name, key, counts, metadata,
                                 verified)
        seconds = time.perf_counter() - began
        return {"dataset": job.dataset_name, "embedder": job.embedder.name, "rows": total,
                "written": written, "kept": kept, "seconds": seconds, "device": self.device,
                "precision": self.precision, "store_key": key, "loads": LOADS["count"],
                "load_seconds": self.load_seconds, "threads": self.torch_threads,
                "texts_per_s": written / seconds if seconds > 0 and written else 0.0}


def pinned_versions(spec: EmbedderSpec) -> dict[str, str | None]:
    """The installed version of each package the embedder's ``runtime_env`` pins, as this process
    sees it (None: not installed): inside its actor, what Ray installed."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for requirement in spec.runtime_env.pip if spec.runtime_env else []:
        name = re.split(r"[<>=!~\[ ,]", requirement, maxsplit=1)[0]
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def shard_layout(train_rows: int, test_rows: int, shard_rows: int) -> list[tuple[str, int, int, int]]:
    """``(split, index, first row, rows)`` of every shard of an entry: each split cut into
    ``shard_rows``-row shards (an empty split still has one, empty, shard)."""
    layout = []
    for split, n in (("train", train_rows), ("test", test_rows)):
        for index in range(max(1, math.ceil(n / shard_rows))):
            start = index * shard_rows
            layout.append((split, index, start, max(0, min(shard_rows, n - start))))
    return layout


def embed_into_store(job: EmbeddingJob, dataset: TextDataset, store_root: str, threads: int = 0,
                     shard_rows: int = DEFAULT_SHARD_ROWS) -> dict:
    """Embed one dataset (loads the model: ``EmbeddingActor`` keeps it for several)."""
    return EmbeddingActor(job.embedder, threads).embed(job, dataset, store_root, shard_rows,
                                                       quiet=True)


def _pad_to_multiple(embedder) -> None:
    """Pad sentence-transformers batches to a multiple of LENGTH_MULTIPLE tokens."""
    model = getattr(embedder, "model", None)
    try:
        first = model[0] if model is not None else None
    except (TypeError, IndexError, KeyError):
        return
    if first is not None and isinstance(getattr(first, "processing_kwargs", None), dict):
        text = dict(first.processing_kwargs.get("text") or {})
        text["pad_to_multiple_of"] = LENGTH_MULTIPLE
        first.processing_kwargs = {**first.processing_kwargs, "text": text}


def plan_batches(lengths: np.ndarray, token_budget: int, max_rows: int) -> list[np.ndarray]:
    """Row indices of each batch: longest first, each batch's rows x its longest length (rounded
    up to LENGTH_MULTIPLE) within ``token_budget`` (always at least one row). Rows are sorted by
    their exact lengths (ties in input order), so a batch padded to its own longest row (CPU)
    carries little padding, and one padded to the multiple (GPU) has the same shape either way."""
    rounded = -(-lengths // LENGTH_MULTIPLE) * LENGTH_MULTIPLE
    order = np.argsort(-lengths, kind="stable")
    batches, i = [], 0
    while i < len(order):
        width = int(rounded[order[i]])  # the batch's longest: rows sorted longest first
        rows = max(1, min(max_rows, token_budget // max(width, 1)))
        batches.append(order[i:i + rows])
        i += rows
    return batches


def encode_batched(embedder, texts: list[str], token_budget: int = DEFAULT_TOKEN_BUDGET) -> np.ndarray:
    """``embedder.encode(texts)`` in batches of length-sorted texts, each within ``token_budget``
    padded tokens and ``embedder.batch_size`` rows (same order out). Texts are tokenized once
    (``embedder.tokenize``): the lengths plan the batches and the ids feed them."""
    tokenize = getattr(embedder, "tokenize", None)
    tokens = tokenize(texts) if tokenize is not None else None
    if tokens is None:
        return embedder.encode(texts)
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    for rows in plan_batches(tokens.lengths, token_budget, max_rows=embedder.batch_size):
        out[rows] = embedder.encode_tokens(tokens, rows)
    return out


def _albench_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("albench")
    except PackageNotFoundError:
        return "unknown"
