"""The embedding stage: every (embedder, dataset) entry the trials need, in the store.

Entries found in the store are verified (each file by the store; here also against the dataset
it claims to embed) and reused; damaged ones are removed and recomputed. Missing entries are
computed by one Ray task each, on a GPU when the cluster has one. An entry that cannot be
computed (the embedder raised, retries exhausted, the written file does not verify) does not
stop the others: it is reported in ``EmbeddingResult.errors`` and only the trials that need
it fail.

Embedding tasks are retried by Ray on system failures (worker crash, node loss:
``max_retries``); an exception of the embedder itself is deterministic, so it is not retried.
Workers write by rename, so a cancelled or killed task leaves no partial file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import ray

from orchestrator.console import Reporter
from orchestrator.ray_runtime import task_error
from workers.datasets import TextDataset
from workers.embedding import EmbeddingJob, embed_into_store
from workers.store import EmbeddingStore, StoreCorruptionError
from workers.trajectory import TrialData

EMBEDDING_TASK_RETRIES = 3
"""Ray re-runs an embedding task after a system failure (worker crash, node loss) this often."""


@dataclass
class EmbeddingResult:
    """The stage's outcome: arrays by store key, and an error for each entry that failed."""

    data: dict[str, TrialData] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def embedding_stage(jobs: list[EmbeddingJob], datasets: dict[str, TextDataset], store: EmbeddingStore,
                    resources, reporter: Reporter) -> EmbeddingResult:
    """Make sure every job's entry is in the store; read them all (``resources``: the config's)."""
    result = EmbeddingResult()
    missing: list[EmbeddingJob] = []
    for job in jobs:
        data = read_entry(store, job, datasets.get(job.dataset_name), reporter)
        if data is None:
            missing.append(job)
        else:
            result.data[job.key] = data
            reporter.found(job.dataset_name, job.embedder.name)
    if missing:
        _compute(missing, datasets, store, resources, reporter, result)
    return result


def _compute(missing: list[EmbeddingJob], datasets: dict[str, TextDataset], store: EmbeddingStore,
             resources, reporter: Reporter, result: EmbeddingResult) -> None:
    for job in missing:
        remove_leftovers(store, job)
    cluster = ray.cluster_resources()
    has_gpu = cluster.get("GPU", 0) > 0
    if has_gpu:
        options = {"num_gpus": resources.gpus_per_embedding, "num_cpus": 1}
        threads = 0
    else:
        cpus = min(resources.cpus_per_embedding, cluster.get("CPU", 1))
        options = {"num_cpus": cpus}
        threads = max(1, int(cpus))
    # System failures (worker crash, node loss) are retried; exceptions of the embedder are
    # deterministic and would fail again, so they are not (retry_exceptions=False).
    task = ray.remote(max_retries=EMBEDDING_TASK_RETRIES, retry_exceptions=False)(
        embed_into_store).options(**options)
    dataset_refs = {name: ray.put(datasets[name]) for name in {j.dataset_name for j in missing}}
    root = str(store.root.resolve())
    pending = {task.remote(job, dataset_refs[job.dataset_name], root, threads): job for job in missing}
    reporter.embedding(len(missing), "GPU" if has_gpu else "CPU")
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            name = f"{job.dataset_name} x {job.embedder.name}"
            try:
                info = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:
                cause = task_error(exc)
                _failed(result, reporter, job, f"embedding {name} failed: {type(cause).__name__}: {cause}")
                continue
            except ray.exceptions.RayError as exc:  # retries exhausted
                _failed(result, reporter, job, f"embedding {name} failed: {type(exc).__name__}: {exc}")
                continue
            reporter.embedded(name, info["rows"], info["seconds"], info["device"])
            data = read_entry(store, job, datasets.get(job.dataset_name), reporter)
            if data is None:
                _failed(result, reporter, job, f"embedding {name}: the written entry does not verify")
                continue
            result.data[job.key] = data
    except KeyboardInterrupt:
        for ref in pending:  # workers write by rename: a cancelled task leaves no partial file
            ray.cancel(ref, force=True)
        raise


def _failed(result: EmbeddingResult, reporter: Reporter, job: EmbeddingJob, message: str) -> None:
    result.errors[job.key] = message
    reporter.embedding_failed(message)


def remove_leftovers(store: EmbeddingStore, job: EmbeddingJob) -> None:
    """Remove a half entry (one split only) and temporaries of a write that was killed."""
    store.remove(job.dataset_name, job.embedder.name, job.key)
    directory = store.directory(job.dataset_name, job.embedder.name, job.key)
    if directory.is_dir():
        for leftover in directory.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def read_entry(store: EmbeddingStore, job: EmbeddingJob, dataset: TextDataset | None,
               reporter: Reporter) -> TrialData | None:
    """Read and verify both splits; None when missing or damaged (damaged ones are removed).

    The store checks each file (Parquet structure, schema, row count, checksum); here the
    entry is also checked against the dataset it claims to embed (rows, labels, dimension).
    Every damaged file is reported, then the entry is removed to be recomputed.
    """
    if not store.has(job.dataset_name, job.embedder.name, job.key):
        return None
    tables, problems = {}, []
    for split in ("train", "test"):
        path = store.path(job.dataset_name, job.embedder.name, job.key, split)
        try:
            table = store.read(job.dataset_name, job.embedder.name, job.key, split)
        except StoreCorruptionError as exc:
            problems.append(str(exc))
            continue
        labels = None if dataset is None else (dataset.train_labels if split == "train"
                                               else dataset.test_labels)
        if labels is not None and (len(table) != len(labels) or not np.array_equal(table.labels, labels)):
            problems.append(f"{path}: {len(table)} rows do not match the dataset's {len(labels)}")
            continue
        tables[split] = table
    if not problems and tables["train"].embeddings.shape[1] != tables["test"].embeddings.shape[1]:
        problems.append(f"{job.dataset_name} x {job.embedder.name}: the splits' dimensions differ")
    if problems:
        for problem in problems:
            reporter.store_problem(problem)
        store.remove(job.dataset_name, job.embedder.name, job.key)
        return None
    train, test = tables["train"], tables["test"]
    return TrialData(
        train_x=np.asarray(train.embeddings, dtype=np.float32),
        train_y=train.labels,
        test_x=np.asarray(test.embeddings, dtype=np.float32),
        test_y=test.labels,
    )
