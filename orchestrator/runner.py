"""The driver: embedding stage (Ray tasks into the store), then trajectory stage (Ray actors).

The driver is the only writer of MLflow and of checkpoints. Trajectory actors stream one record
per cycle; the driver logs them in batches and, only after a batch is in MLflow, saves the
trials' checkpoints, so a resumed trial never logs a step twice and never misses one.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import ray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator.checkpoints import CheckpointStore
from orchestrator.grid import Plan
from orchestrator.tracking import Tracker
from workers.actors import TrajectoryWorker
from workers.embedding import EmbeddingJob, embed_into_store
from workers.learner import normalized_auc
from workers.specs import TrialSpec
from workers.store import EmbeddingStore, StoreCorruptionError
from workers.trajectory import CycleRecord, TrialData

FLUSH_SECONDS = 1.0
MAX_ACTOR_RESTARTS_PER_TRIAL = 3


@dataclass
class RunSummary:
    """What a run did, for the final report and the exit code."""

    finished: int = 0
    skipped: int = 0
    failed: list[tuple[TrialSpec, str]] = field(default_factory=list)
    interrupted: bool = False


@dataclass
class _Active:
    trial: TrialSpec
    run_id: str
    actor: object
    logged_steps: set[int]
    buffer: list[CycleRecord] = field(default_factory=list)
    restarts: int = 0


def init_ray(num_cpus: int | None = None) -> None:
    """Connect to RAY_ADDRESS when set (a cluster), else start a local Ray."""
    if ray.is_initialized():
        return
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}})


def embedding_stage(plan: Plan, store: EmbeddingStore, console: Console) -> dict[str, TrialData]:
    """Make sure every (embedder, dataset) is in the store; return the arrays by store key."""
    resources = plan.config.resources
    loaded: dict[str, TrialData] = {}
    missing: list[EmbeddingJob] = []
    for job in plan.jobs:
        data = _read_entry(store, job, console)
        if data is None:
            missing.append(job)
        else:
            loaded[job.key] = data
            console.print(f"  store: {job.dataset_name} x {job.embedder.name} found, skipped")
    if not missing:
        return loaded
    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    total_cpus = ray.cluster_resources().get("CPU", 1)
    if has_gpu:
        options = {"num_gpus": resources.gpus_per_embedding, "num_cpus": 1}
        threads = 0
    else:
        cpus = min(resources.cpus_per_embedding, total_cpus)
        options = {"num_cpus": cpus}
        threads = max(1, int(cpus))
    task = ray.remote(max_retries=3, retry_exceptions=False)(embed_into_store).options(**options)
    dataset_refs = {name: ray.put(data) for name, data in plan.datasets.items()
                    if any(j.dataset_name == name for j in missing)}
    pending = {
        task.remote(job, dataset_refs[job.dataset_name], str(store.root), threads): job
        for job in missing
    }
    console.print(f"  embedding {len(missing)} (embedder, dataset) pairs "
                  f"on {'GPU' if has_gpu else 'CPU'}")
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        info = ray.get(done[0])
        console.print(f"  embedded {job.dataset_name} x {job.embedder.name}: {info['rows']} texts "
                      f"in {info['seconds']:.1f} s on {info['device']}")
        data = _read_entry(store, job, console)
        if data is None:
            raise StoreCorruptionError(f"{job.dataset_name} x {job.embedder.name}: written entry unreadable")
        loaded[job.key] = data
    return loaded


def _read_entry(store: EmbeddingStore, job: EmbeddingJob, console: Console) -> TrialData | None:
    """Read and verify both splits; None when missing or damaged (damaged ones are removed)."""
    if not store.has(job.dataset_name, job.embedder.name, job.key):
        return None
    try:
        train = store.read(job.dataset_name, job.embedder.name, job.key, "train")
        test = store.read(job.dataset_name, job.embedder.name, job.key, "test")
    except StoreCorruptionError as exc:
        console.print(f"  [yellow]store: {exc}; recomputing[/yellow]")
        store.remove(job.dataset_name, job.embedder.name, job.key)
        return None
    return TrialData(
        train_x=np.asarray(train.embeddings, dtype=np.float32),
        train_y=train.labels,
        test_x=np.asarray(test.embeddings, dtype=np.float32),
        test_y=test.labels,
    )


class TrajectoryStage:
    """Fans trials out to a fixed set of actors and streams their cycles into MLflow."""

    def __init__(self, plan: Plan, tracker: Tracker, checkpoints: CheckpointStore,
                 data: dict[str, TrialData], console: Console) -> None:
        self.plan = plan
        self.tracker = tracker
        self.checkpoints = checkpoints
        self.console = console
        self.data_refs = {key: ray.put(value) for key, value in data.items()}
        resources = plan.config.resources
        self.actor_class = ray.remote(TrajectoryWorker).options(
            num_cpus=resources.cpus_per_trajectory, max_restarts=0
        )
        cpus = ray.cluster_resources().get("CPU", 1)
        self.n_actors = resources.max_concurrency or max(1, int(cpus // resources.cpus_per_trajectory))

    def run(self, trials: list[TrialSpec], existing: dict, summary: RunSummary) -> None:
        queue = deque(trials)
        idle = [self.actor_class.remote() for _ in range(min(self.n_actors, len(trials)))]
        active: dict[object, _Active] = {}
        last_flush = time.monotonic()
        columns = (TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[failed]} failed"))
        with Progress(*columns, console=self.console, transient=False) as progress:
            bar = progress.add_task("trials", total=len(trials), failed=0)
            try:
                while queue or active:
                    while idle and queue:
                        trial = queue.popleft()
                        self._start(trial, idle.pop(), existing, active)
                    ready, _ = ray.wait(list(active), num_returns=1, timeout=FLUSH_SECONDS)
                    for generator in ready:
                        state = active[generator]
                        outcome = self._advance(generator, state)
                        if outcome is None:
                            continue
                        del active[generator]
                        if outcome == "restart":
                            state.restarts += 1
                            if state.restarts > MAX_ACTOR_RESTARTS_PER_TRIAL:
                                self._fail(state, "the trajectory actor died repeatedly", "", summary)
                            else:
                                queue.appendleft(state.trial)
                            idle.append(self.actor_class.remote())
                        else:
                            if outcome == "finished":
                                summary.finished += 1
                            else:
                                self._fail(state, *outcome, summary)
                            idle.append(state.actor)
                        progress.update(bar, completed=summary.finished + len(summary.failed),
                                        failed=len(summary.failed))
                    if time.monotonic() - last_flush >= FLUSH_SECONDS:
                        self._flush(active.values())
                        last_flush = time.monotonic()
            except KeyboardInterrupt:
                summary.interrupted = True
                self._flush(active.values())
                for state in active.values():
                    self.tracker.fail(state.run_id, "interrupted (Ctrl-C)", "", status="KILLED")
                raise

    def _start(self, trial: TrialSpec, actor, existing: dict, active: dict) -> None:
        previous = existing.get(trial.trial_key)
        checkpoint = self.checkpoints.load(trial.trial_key)
        if previous is not None and previous.status != "FINISHED":
            run_id = previous.run_id
            self.tracker.reopen(run_id)
            logged = self.tracker.logged_steps(run_id)
        else:
            run_id = self.tracker.start_trial(trial)
            logged = set()
            checkpoint = None  # a fresh run starts from scratch
        generator = actor.run.remote(trial, self.data_refs[trial.embedding_key], checkpoint)
        active[generator] = _Active(trial, run_id, actor, logged)

    def _advance(self, generator, state: _Active):
        """Consume one item: None while running, 'finished', 'restart' or (error, traceback)."""
        try:
            record = ray.get(next(generator))
        except StopIteration:
            self._flush([state])
            self._finish(state)
            return "finished"
        except (ray.exceptions.ActorDiedError, ray.exceptions.ActorUnavailableError,
                ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError):
            self._flush([state])
            return "restart"
        except ray.exceptions.RayTaskError as exc:
            self._flush([state])
            cause = exc.cause if exc.cause is not None else exc
            return (f"{type(cause).__name__}: {cause}", str(exc))
        state.buffer.append(record)
        return None

    def _flush(self, states) -> None:
        """Log buffered cycles (skipping steps already in MLflow), then save checkpoints."""
        timestamp = int(time.time() * 1000)
        for state in states:
            if not state.buffer:
                continue
            rows = []
            for record in state.buffer:
                if record.n_labelled in state.logged_steps:
                    continue
                rows.extend((name, value, record.n_labelled) for name, value in record.metrics().items())
                state.logged_steps.add(record.n_labelled)
            if rows:
                self.tracker.log_metrics(state.run_id, rows, timestamp)
            self.checkpoints.save(state.trial.trial_key, state.buffer[-1].checkpoint)
            state.buffer.clear()

    def _finish(self, state: _Active) -> None:
        summary = curve_summary(self.tracker, state.run_id)
        self.tracker.finish(state.run_id, summary, int(time.time() * 1000))
        self.checkpoints.remove(state.trial.trial_key)

    def _fail(self, state: _Active, error: str, trace: str, summary: RunSummary) -> None:
        self.tracker.fail(state.run_id, error, trace or error)
        summary.failed.append((state.trial, error))


def curve_summary(tracker: Tracker, run_id: str) -> dict[str, float]:
    """AUC and final values, recomputed from the curves as MLflow holds them."""
    result: dict[str, float] = {}
    for metric in ("accuracy", "macro_f1"):
        curve = tracker.curve(run_id, metric)
        steps = np.array([s for s, _ in curve], dtype=np.float64)
        values = np.array([v for _, v in curve], dtype=np.float64)
        result[f"auc_{metric}"] = normalized_auc(steps, values)
        result[f"final_{metric}"] = float(values[-1])
    result["total_query_seconds"] = float(
        sum(v for _, v in tracker.curve(run_id, "query_seconds"))
    )
    return result


def run_grid(plan: Plan, tracker: Tracker, console: Console, *, force: bool = False,
             rerun_failed: bool = True) -> RunSummary:
    """Embed what is missing, then run every trial that has no FINISHED run yet."""
    config = plan.config
    store = EmbeddingStore(config.store.path)
    summary = RunSummary()
    console.print(f"[bold]{config.name}[/bold]: {len(plan.trials)} trials, "
                  f"{len(plan.jobs)} (embedder, dataset) pairs")
    data = embedding_stage(plan, store, console)
    existing = tracker.trial_runs()
    todo = []
    for trial in plan.trials:
        previous = existing.get(trial.trial_key)
        if previous is not None and not force:
            if previous.status == "FINISHED" or (previous.status == "FAILED" and not rerun_failed):
                summary.skipped += 1
                continue
        if force:
            existing.pop(trial.trial_key, None)
        todo.append(trial)
    if summary.skipped:
        console.print(f"  {summary.skipped} trials already done in MLflow, skipped")
    if todo:
        stage = TrajectoryStage(plan, tracker, CheckpointStore(config.store.checkpoints), data, console)
        console.print(f"  running {len(todo)} trials on {stage.n_actors} actors")
        stage.run(todo, existing, summary)
    return summary

