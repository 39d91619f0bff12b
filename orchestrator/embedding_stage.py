"""The embedding stage: every (embedder, dataset) entry the trials need, in the store.

Entries found in the store are verified (each file by the store; here also against the dataset
it claims to embed) and reused; damaged ones are removed and recomputed. Missing entries are
computed by long-lived ``EmbeddingActor``s, one per embedder and GPU (on a CPU-only cluster one per
embedder and node; in the embedder's own ``runtime_env`` when it has one): each loads the model
once and embeds every dataset that needs it, shard by shard. With several actors per embedder the
shards of each dataset are spread over them round robin (data-parallel) and one last call, once
every shard is written, verifies them all and writes the manifest. An entry that cannot be computed (the embedder raised,
restarts exhausted, the written entry does not verify) does not stop the others: it is reported
in ``EmbeddingResult.errors`` and only the trials that need it fail.

A killed actor is restarted by Ray (``max_restarts``) and its call retried; the retry keeps the
shards already written and verified and resumes at the first missing one, so a lost node or a
killed driver costs at most one shard per embedder. Shards are written by rename; an entry is
visible only once its manifest (written last) is there.

The store may be an object store (``s3://...``): the actors write their shards and manifest there
directly, with the store's environment variables of the driver (``workers.fs.STORE_ENV``: the
endpoint, region and credentials the preflight checked) passed to them in their
``runtime_env``, and the driver reads the entries back from it into memory (never a file on its
own disk) before they are ``ray.put`` once per (dataset, embedder) for the trajectory actors.

The store key of an embedder whose precision is ``auto`` includes the precision it resolved to
on the device (``EmbeddingJob.store_key``); trial keys do not change.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np
import ray

from orchestrator.cluster import fit, live_nodes
from orchestrator.console import Reporter
from orchestrator.ray_runtime import task_error
from workers.datasets import TextDataset
from workers.embedding import (
    DEFAULT_SHARD_ROWS,
    DEFAULT_TOKEN_BUDGET,
    EmbeddingActor,
    EmbeddingJob,
    shard_layout,
)
from workers.fs import store_env
from workers.store import EmbeddingStore, resolves_precision
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
    started: float = field(default_factory=time.time)
    """When the stage began (epoch seconds): its MLflow run spans it."""


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
                    token_budget: int | None = None, actors: int | None = None) -> EmbeddingResult:
    """Make sure every job's entry is in the store; read them all (``resources``: the config's;
    ``actors``: actors per embedder, default ``actors_per_embedder``)."""
    result = EmbeddingResult()
    missing: list[EmbeddingJob] = []
    precision = auto_precision(resources) if any(
        resolves_precision(j.identity) for j in jobs) else "float32"
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
                 token_budget or getattr(resources, "embedding_token_budget", DEFAULT_TOKEN_BUDGET),
                 actors)
    return result


def record_stage(tracker, result: EmbeddingResult) -> str | None:
    """The embedding stage's own MLflow run (``albench.kind=embedding``), when it computed
    anything: per (dataset, embedder) its rows, seconds, model load seconds and texts/s as
    metrics, its device, precision and store key as params; the failed entries' errors as
    params too. None when everything came from the store."""
    if not result.info and not result.errors:
        return None
    metrics: dict[str, float] = {"entries_computed": len(result.info), "entries_failed": len(result.errors)}
    params: dict[str, str] = {}
    for info in result.info.values():
        cell = _name(f"{info['dataset']}/{info['embedder']}")
        for field_name in ("rows", "written", "seconds", "texts_per_s", "load_seconds"):
            if field_name in info:
                metrics[f"{cell}/{field_name}"] = float(info[field_name])
        for field_name in ("device", "precision", "store_key"):
            params[f"{cell}/{field_name}"] = str(info[field_name])
    for key, error in result.errors.items():
        params[f"failed/{key[:16]}"] = error
    devices = sorted({str(i["device"]) for i in result.info.values()}) or ["none"]
    return tracker.log_stage("embedding", "embedding stage", params=params, metrics=metrics,
                             tags={"device": ", ".join(devices)}, started=result.started)


def _name(text: str) -> str:
    """A metric or param name MLflow accepts (letters, digits, ``_-. /:``)."""
    return re.sub(r"[^\w\-. /:]", "_", text)[:200]


def actors_per_embedder(resources) -> int:
    """How many actors one embedder gets: one per GPU share on a GPU cluster (the shards of one
    dataset are spread over them, data-parallel); on a CPU-only cluster one per node that can
    host one (a single machine: one)."""
    cluster = ray.cluster_resources()
    if cluster.get("GPU", 0) > 0:
        return max(1, int(cluster["GPU"] // max(resources.gpus_per_embedding, 1e-9)))
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    need = min(resources.cpus_per_embedding, max((n["Resources"].get("CPU", 0) for n in nodes),
                                                 default=1))
    return max(1, sum(1 for n in nodes if n["Resources"].get("CPU", 0) >= need))


@dataclass
class _Entry:
    """One job in flight: its parts (data-parallel) or one whole call, and what they reported."""

    job: EmbeddingJob
    owner: str
    parts_left: int = 0
    reports: list[dict] = field(default_factory=list)
    failed: bool = False
    began: float = 0.0


def _compute(missing: list[EmbeddingJob], datasets: dict[str, TextDataset], store: EmbeddingStore,
             resources, reporter: Reporter, result: EmbeddingResult, precision: str,
             shard_rows: int, token_budget: int, actors: int | None = None) -> None:
    cluster = ray.cluster_resources()
    has_gpu = cluster.get("GPU", 0) > 0
    if has_gpu:
        options = {"num_gpus": resources.gpus_per_embedding, "num_cpus": 1}
        threads = 0
    else:
        cpus = fit(resources, live_nodes()).embedding_cpus  # one actor runs on one node
        options = {"num_cpus": cpus}
        threads = max(1, int(cpus))
    per_embedder = actors or actors_per_embedder(resources)
    actor_class = ray.remote(EmbeddingActor)
    by_embedder: dict[str, list[EmbeddingJob]] = {}
    for job in missing:
        by_embedder.setdefault(job.embedder.name, []).append(job)
    dataset_refs = {name: ray.put(datasets[name]) for name in {j.dataset_name for j in missing}}
    root = str(store.root.resolve())
    all_actors: list = []
    owned: dict[str, list] = {}  # embedder -> [its actors, jobs not yet complete]
    pending: dict = {}  # ref -> (entry, kind, actor)
    reporter.embedding(len(missing), "GPU" if has_gpu else "CPU")
    for name, jobs in by_embedder.items():
        spec = jobs[0].embedder
        extra = _runtime_env(spec, store)
        # A lost actor is restarted and its call retried; exceptions of the embedder itself are
        # deterministic, so they are not (retry_exceptions is off for actor calls by default).
        layouts = {j.key: shard_layout(len(datasets[j.dataset_name].train_texts),
                                       len(datasets[j.dataset_name].test_texts), shard_rows)
                   for j in jobs}
        count = max(1, min(per_embedder, max(len(v) for v in layouts.values())))
        mine = [actor_class.options(max_restarts=EMBEDDING_TASK_RETRIES,
                                    max_task_retries=EMBEDDING_TASK_RETRIES,
                                    **options, **extra).remote(spec, threads)
                for _ in range(count)]
        all_actors += mine
        owned[name] = [mine, len(jobs)]
        turn = 0
        for job in jobs:
            store.clear_partial(job, precision)
            entry = _Entry(job, name, began=time.perf_counter())
            data = dataset_refs[job.dataset_name]
            shards = [(split, index) for split, index, _, _ in layouts[job.key]]
            if count == 1 or len(shards) == 1:
                actor = mine[turn % count]
                turn += 1
                pending[actor.embed.remote(job, data, root, shard_rows, token_budget)] = (
                    entry, "whole", actor)
                continue
            parts: dict[int, list] = {}
            for shard in shards:  # round robin over the embedder's actors, across its datasets
                parts.setdefault(turn % count, []).append(shard)
                turn += 1
            entry.parts_left = len(parts)
            for i, only in parts.items():
                ref = mine[i].embed.remote(job, data, root, shard_rows, token_budget,
                                           only=only, manifest=False)
                pending[ref] = (entry, "part", mine[i])
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            entry, kind, actor = pending.pop(done[0])
            job = entry.job
            name = f"{job.dataset_name} x {job.embedder.name}"
            try:
                info = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:
                cause = task_error(exc)
                info = f"embedding {name} failed: {type(cause).__name__}: {cause}"
            except ray.exceptions.RayError as exc:  # restarts exhausted
                info = f"embedding {name} failed: {type(exc).__name__}: {exc}"
            if entry.failed:
                continue  # another part of this entry failed already
            if isinstance(info, str):
                entry.failed = True
                _failed(result, reporter, job, info)
                _release(owned, entry.owner)
                continue
            entry.reports.append(info)
            if kind == "part":
                entry.parts_left -= 1
                if entry.parts_left == 0:  # every shard written: one call verifies, then shows it
                    ref = actor.embed.remote(job, dataset_refs[job.dataset_name], root, shard_rows,
                                             token_budget, only=[], manifest=True)
                    pending[ref] = (entry, "final", actor)
                continue
            _release(owned, entry.owner)
            info = _merged(entry)
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
        for actor in all_actors:
            ray.kill(actor, no_restart=True)


def _merged(entry: _Entry) -> dict:
    """One entry's report from its calls: a whole call's own, or its parts' summed (rows and
    texts/s over the wall time from the first submission to the manifest)."""
    if len(entry.reports) == 1:
        return entry.reports[0]
    last = entry.reports[-1]
    seconds = time.perf_counter() - entry.began
    written = sum(r["written"] for r in entry.reports)
    return {**last, "rows": sum(r["rows"] for r in entry.reports[:-1]), "written": written,
            "kept": sum(r["kept"] for r in entry.reports[:-1]), "seconds": seconds,
            "loads": max(r["loads"] for r in entry.reports), "parts": len(entry.reports) - 1,
            "part_written": [r["written"] for r in entry.reports[:-1]],
            "texts_per_s": written / seconds if seconds > 0 and written else 0.0}


def _runtime_env(spec, store: EmbeddingStore) -> dict:
    """The actor's ``runtime_env`` option: the embedder's own, plus, for a store on an object
    store, the driver's store variables (the embedder's own ``env_vars`` win)."""
    runtime_env = spec.runtime_env.ray() if spec.runtime_env else {}
    if store.remote and (env := store_env()):
        runtime_env = {**runtime_env, "env_vars": {**env, **runtime_env.get("env_vars", {})}}
    return {"runtime_env": runtime_env} if runtime_env else {}


def _release(owned: dict[str, list], embedder: str) -> None:
    """Count one of the embedder's jobs complete; when none is left its actors end now, freeing
    their GPUs or CPUs for the embedders still waiting (they would otherwise be held until the
    stage ends)."""
    entry = owned[embedder]
    entry[1] -= 1
    if entry[1] == 0:
        for actor in entry[0]:
            ray.kill(actor, no_restart=True)


def _failed(result: EmbeddingResult, reporter: Reporter, job: EmbeddingJob, message: str) -> None:
    result.errors[job.key] = message
    reporter.embedding_failed(message)


def read_entry(store: EmbeddingStore, job: EmbeddingJob, dataset: TextDataset | None,
               reporter: Reporter, precision: str = "float32") -> TrialData | None:
    """Read and verify both splits; None when missing or damaged (damaged ones are removed).

    The store checks each file (Parquet structure, schema, key, row count, checksum) and the
    entry against the dataset it claims to embed (rows, labels, dimension:
    ``EmbeddingStore.verified``). Every problem is reported, then the entry is removed to be
    recomputed.
    """
    key = job.store_key(precision)
    if not store.has(job.dataset_name, job.embedder.name, key):
        return None
    labels = None if dataset is None else {"train": dataset.train_labels, "test": dataset.test_labels}
    tables, problems = store.verified(job, key, labels)
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
