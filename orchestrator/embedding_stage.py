"""The embedding stage: every (embedder, dataset) entry the trials need, in the store.

Entries found in the store are verified (each file by the store; here also against the dataset
it claims to embed) and reused; damaged ones are removed and recomputed. Missing entries are
computed by one long-lived ``EmbeddingActor`` per embedder (on a GPU when the cluster has one,
in the embedder's own ``runtime_env`` when it has one): it loads the model once and embeds every
dataset that needs it, shard by shard. An entry that cannot be computed (the embedder raised,
restarts exhausted, the written entry does not verify) does not stop the others: it is reported
in ``EmbeddingResult.errors`` and only the trials that need it fail.

A killed actor is restarted by Ray (``max_restarts``) and its call retried; the retry keeps the
shards already written and verified and resumes at the first missing one, so a lost node or a
killed driver costs at most one shard per embedder. Shards are written by rename; an entry is
visible only once its manifest (written last) is there.

The store key of an embedder whose precision is ``auto`` includes the precision it resolved to
on the device (``EmbeddingJob.store_key``); trial keys do not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import ray

from orchestrator.cluster import fit, live_nodes
from orchestrator.console import Reporter
from orchestrator.ray_runtime import task_error
from workers.datasets import TextDataset
from workers.embedding import DEFAULT_SHARD_ROWS, DEFAULT_TOKEN_BUDGET, EmbeddingActor, EmbeddingJob
from workers.store import EmbeddingStore, StoreCorruptionError
from workers.trajectory import TrialData

EMBEDDING_TASK_RETRIES = 3
"""Ray restarts a lost embedding actor (worker crash, node loss) and retries its call this often."""


@dataclass
class EmbeddingResult:
    """The stage's outcome: arrays by (trial-visible) key, and an error for each failed entry."""

    data: dict[str, TrialData] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    info: dict[str, dict] = field(default_factory=dict)
    """What each computed entry's actor reported (rows, seconds, texts/s, precision, loads)."""


def auto_precision(resources) -> str:
    """What ``precision: auto`` resolves to on this cluster's embedding devices (asked of a GPU
    when there is one: bfloat16 where supported, else float16; float32 on CPU)."""
    if ray.cluster_resources().get("GPU", 0) <= 0:
        return "float32"

    def probe() -> str:
        from workers.embedders.base import cuda_auto_precision

        return cuda_auto_precision()

    return ray.get(ray.remote(probe).options(num_gpus=resources.gpus_per_embedding,
                                             num_cpus=1).remote())


def embedding_stage(jobs: list[EmbeddingJob], datasets: dict[str, TextDataset], store: EmbeddingStore,
                    resources, reporter: Reporter, *, shard_rows: int | None = None,
                    token_budget: int | None = None) -> EmbeddingResult:
    """Make sure every job's entry is in the store; read them all (``resources``: the config's)."""
    result = EmbeddingResult()
    missing: list[EmbeddingJob] = []
    precision = auto_precision(resources) if any(
        '"precision":"auto"' in j.identity for j in jobs) else "float32"
    for job in jobs:
        data = read_entry(store, job, datasets.get(job.dataset_name), reporter, precision)
        if data is None:
            missing.append(job)
        else:
            result.data[job.key] = data
            reporter.found(job.dataset_name, job.embedder.name)
    if missing:
        _compute(missing, datasets, store, resources, reporter, result, precision,
                 shard_rows or getattr(resources, "embedding_shard_rows", DEFAULT_SHARD_ROWS),
                 token_budget or getattr(resources, "embedding_token_budget", DEFAULT_TOKEN_BUDGET))
    return result


def _compute(missing: list[EmbeddingJob], datasets: dict[str, TextDataset], store: EmbeddingStore,
             resources, reporter: Reporter, result: EmbeddingResult, precision: str,
             shard_rows: int, token_budget: int) -> None:
    cluster = ray.cluster_resources()
    has_gpu = cluster.get("GPU", 0) > 0
    if has_gpu:
        options = {"num_gpus": resources.gpus_per_embedding, "num_cpus": 1}
        threads = 0
    else:
        cpus = fit(resources, live_nodes()).embedding_cpus  # one actor runs on one node
        options = {"num_cpus": cpus}
        threads = max(1, int(cpus))
    actor_class = ray.remote(EmbeddingActor)
    by_embedder: dict[str, list[EmbeddingJob]] = {}
    for job in missing:
        by_embedder.setdefault(job.embedder.name, []).append(job)
    dataset_refs = {name: ray.put(datasets[name]) for name in {j.dataset_name for j in missing}}
    root = str(store.root.resolve())
    actors, pending, left = [], {}, {}
    reporter.embedding(len(missing), "GPU" if has_gpu else "CPU")
    for jobs in by_embedder.values():
        spec = jobs[0].embedder
        extra = {"runtime_env": spec.runtime_env.ray()} if spec.runtime_env else {}
        # A lost actor is restarted and its call retried; exceptions of the embedder itself are
        # deterministic, so they are not (retry_exceptions is off for actor calls by default).
        actor = actor_class.options(max_restarts=EMBEDDING_TASK_RETRIES,
                                    max_task_retries=EMBEDDING_TASK_RETRIES,
                                    **options, **extra).remote(spec, threads)
        actors.append(actor)
        left[job_owner(jobs)] = [actor, len(jobs)]
        for job in jobs:
            _clear_half_entry(store, job, precision)
            ref = actor.embed.remote(job, dataset_refs[job.dataset_name], root, shard_rows,
                                     token_budget)
            pending[ref] = job
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            _release(left, job)
            name = f"{job.dataset_name} x {job.embedder.name}"
            try:
                info = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:
                cause = task_error(exc)
                _failed(result, reporter, job, f"embedding {name} failed: {type(cause).__name__}: {cause}")
                continue
            except ray.exceptions.RayError as exc:  # restarts exhausted
                _failed(result, reporter, job, f"embedding {name} failed: {type(exc).__name__}: {exc}")
                continue
            reporter.embedded(name, info["rows"], info["seconds"],
                              f"{info['device']} ({info['precision']}, "
                              f"{info['texts_per_s']:,.0f} texts/s)")
            result.info[job.key] = info
            data = read_entry(store, job, datasets.get(job.dataset_name), reporter, info["precision"])
            if data is None:
                _failed(result, reporter, job, f"embedding {name}: the written entry does not verify")
                continue
            result.data[job.key] = data
    except KeyboardInterrupt:
        for ref in pending:  # workers write by rename: a cancelled call leaves no partial file
            ray.cancel(ref, force=True)
        raise
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)


def job_owner(jobs: list[EmbeddingJob]) -> str:
    return jobs[0].embedder.name


def _release(left: dict[str, list], job: EmbeddingJob) -> None:
    """Count the job done; an actor with no job left ends now, freeing its GPU or CPUs for the
    embedders still waiting (a finished actor would otherwise hold them until the stage ends)."""
    entry = left[job.embedder.name]
    entry[1] -= 1
    if entry[1] == 0:
        ray.kill(entry[0], no_restart=True)


def _failed(result: EmbeddingResult, reporter: Reporter, job: EmbeddingJob, message: str) -> None:
    result.errors[job.key] = message
    reporter.embedding_failed(message)


def _clear_half_entry(store: EmbeddingStore, job: EmbeddingJob, precision: str) -> None:
    """Before computing: remove the split files of an old-layout half entry and temporaries of
    a killed write; shards that verify stay (the job resumes after them)."""
    key = job.store_key(precision)
    for split in ("train", "test"):
        store.path(job.dataset_name, job.embedder.name, key, split).unlink(missing_ok=True)
    directory = store.directory(job.dataset_name, job.embedder.name, key)
    if directory.is_dir():
        for leftover in directory.rglob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def remove_leftovers(store: EmbeddingStore, job: EmbeddingJob, precision: str = "float32") -> None:
    """Remove a whole entry (files, shards, manifest) and temporaries of a killed write."""
    key = job.store_key(precision)
    store.remove(job.dataset_name, job.embedder.name, key)
    _clear_half_entry(store, job, precision)


def read_entry(store: EmbeddingStore, job: EmbeddingJob, dataset: TextDataset | None,
               reporter: Reporter, precision: str = "float32") -> TrialData | None:
    """Read and verify both splits; None when missing or damaged (damaged ones are removed).

    The store checks each file (Parquet structure, schema, row count, checksum); here the
    entry is also checked against the dataset it claims to embed (rows, labels, dimension).
    Every damaged file is reported, then the entry is removed to be recomputed.
    """
    key = job.store_key(precision)
    if not store.has(job.dataset_name, job.embedder.name, key):
        return None
    tables, problems = {}, []
    for split in ("train", "test"):
        path = store.directory(job.dataset_name, job.embedder.name, key) / split
        try:
            table = store.read(job.dataset_name, job.embedder.name, key, split)
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
        store.remove(job.dataset_name, job.embedder.name, key)
        return None
    train, test = tables["train"], tables["test"]
    return TrialData(
        train_x=np.asarray(train.embeddings, dtype=np.float32),
        train_y=train.labels,
        test_x=np.asarray(test.embeddings, dtype=np.float32),
        test_y=test.labels,
    )
