"""The driver: embedding stage (Ray tasks into the store), then trajectory stage (Ray actors).

The driver is the only writer of MLflow and of checkpoints. Trajectory actors stream one record
per cycle; the driver logs them in batches and, only after a batch is in MLflow, saves the
trials' checkpoints, so a resumed trial never logs a step twice and never misses one.

Fault tolerance, on purpose:

- A grid is idempotent: a trial whose key has a FINISHED run is skipped; an unfinished run
  (RUNNING after a killed driver, KILLED after Ctrl-C, FAILED) is reopened and its trajectory
  resumes from its last checkpoint, skipping (metric, step) points MLflow already has.
- Embedding tasks are retried by Ray on system failures (worker crash, node loss:
  ``max_retries``); an exception in the embedder itself is deterministic, so it is not retried
  but recorded as the failure of the trials that need that entry, and the grid goes on.
- Trajectory actors are created with ``max_restarts=0``. When one dies (worker killed, OOM, its
  node lost), the driver logs what the actor had streamed, saves the checkpoint, and resubmits the
  trial, from that checkpoint, to the next free actor; a replacement actor is requested, and it
  only receives work once it is up (so a replacement that cannot be placed, because its node is
  gone, never holds a trial). Ray's own ``max_restarts`` + ``max_task_retries`` would re-execute
  the generator from its original arguments (cycle 0 or the checkpoint it started from); the
  driver knows a later checkpoint, and resubmitting from it is the same code path as resuming
  after a driver restart, so there is a single, tested way back.
- The embeddings are ``ray.put`` by the driver (owned by it, stored on its node); if a copy is
  lost anyway the driver puts it again and resubmits.
- One trial's exception never stops the grid: the run is FAILED with the error as the
  ``albench.error`` tag and the traceback as ``error.txt``.
- Ctrl-C (or SIGTERM) stops cleanly: streamed cycles are logged and checkpointed, in-flight runs
  are marked KILLED, actors are killed; the store is only ever written by rename.
"""

from __future__ import annotations

import contextlib
import re
import time
import traceback
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import ray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator.checkpoints import CheckpointStore
from orchestrator.grid import Plan
from orchestrator.tracking import Tracker, TrialRun
from workers.actors import TrajectoryWorker
from workers.embedding import EmbeddingJob, embed_into_store
from workers.learner import normalized_auc
from workers.specs import TrialSpec
from workers.store import EmbeddingStore, StoreCorruptionError
from workers.trajectory import Checkpoint, CycleRecord, TrialData

FLUSH_SECONDS = 1.0
MAX_ACTOR_RESTARTS_PER_TRIAL = 3
"""Actor deaths one trial may suffer before it is recorded FAILED (a trial that kills its
worker every time, e.g. out of memory, must not loop forever)."""
MAX_ACTOR_START_FAILURES = 10
"""Actors that may die while starting (their node lost) before the driver gives up."""
WAITING_NOTICE_SECONDS = 30.0
CYCLE_METRICS = ("accuracy", "macro_f1", "query_seconds", "fit_seconds")
"""The per-cycle metrics of ``CycleRecord.metrics()``, logged with step = labelled rows."""
EMBEDDING_TASK_RETRIES = 3
"""Ray re-runs an embedding task after a system failure (worker crash, node loss) this often."""

INFRASTRUCTURE_ERRORS = (
    ray.exceptions.RayActorError,  # ActorDiedError, ActorUnavailableError
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.ObjectLostError,  # OwnerDiedError, ObjectReconstructionFailedError, ...
    ray.exceptions.OutOfMemoryError,
    ray.exceptions.RaySystemError,
)
"""Failures of the machinery, not of the trial: the trial is resubmitted from its checkpoint."""


@dataclass
class RunSummary:
    """What a run did, for the final report and the exit code."""

    finished: int = 0
    skipped: int = 0
    resumed: int = 0
    resubmitted: int = 0
    failed: list[tuple[TrialSpec, str]] = field(default_factory=list)
    interrupted: bool = False


@dataclass
class _Trial:
    """A trial's state for this driver session (survives resubmissions to other actors)."""

    trial: TrialSpec
    run_id: str | None = None
    logged: dict[str, set[int]] = field(default_factory=dict)
    restarts: int = 0
    supersedes: bool = False
    """A ``--force`` rerun: older runs of the key are retired once this one finishes."""


@dataclass
class _Active:
    item: _Trial
    actor: object
    buffer: list[CycleRecord] = field(default_factory=list)


def init_ray(num_cpus: int | None = None) -> None:
    """Connect to RAY_ADDRESS when set (a cluster), else start a fresh local Ray.

    ``address="local"`` matters: without it ``ray.init()`` silently joins whatever cluster a
    ``ray start`` on this machine last recorded in /tmp/ray.
    """
    import os

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False, runtime_env=runtime_env)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env=runtime_env)


# ---------------------------------------------------------------------------- embedding stage


class EmbeddingError(RuntimeError):
    """Some (embedder, dataset) entries could not be computed."""


def embedding_stage(plan: Plan, store: EmbeddingStore, console: Console,
                    jobs: list[EmbeddingJob] | None = None,
                    errors: dict[str, str] | None = None) -> dict[str, TrialData]:
    """Make sure every needed (embedder, dataset) is in the store; the arrays by store key.

    An entry that cannot be computed (the embedder raised, retries exhausted, the written file
    does not verify) does not stop the others: with ``errors`` given, its error is stored there
    by store key (the grid fails only the trials that need it); without, EmbeddingError is
    raised once every other entry is done.
    """
    jobs = plan.jobs if jobs is None else jobs
    raise_at_end = errors is None
    errors = {} if errors is None else errors
    resources = plan.config.resources
    loaded: dict[str, TrialData] = {}
    missing: list[EmbeddingJob] = []
    for job in jobs:
        data = _read_entry(plan, store, job, console)
        if data is None:
            missing.append(job)
        else:
            loaded[job.key] = data
            console.print(f"  store: {job.dataset_name} x {job.embedder.name} found, skipped")
    if not missing:
        return loaded
    for job in missing:
        _remove_leftovers(store, job)
    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    total_cpus = ray.cluster_resources().get("CPU", 1)
    if has_gpu:
        options = {"num_gpus": resources.gpus_per_embedding, "num_cpus": 1}
        threads = 0
    else:
        cpus = min(resources.cpus_per_embedding, total_cpus)
        options = {"num_cpus": cpus}
        threads = max(1, int(cpus))
    # System failures (worker crash, node loss) are retried; exceptions of the embedder are
    # deterministic and would fail again, so they are not (retry_exceptions=False).
    task = ray.remote(max_retries=EMBEDDING_TASK_RETRIES, retry_exceptions=False)(
        embed_into_store).options(**options)
    dataset_refs = {name: ray.put(data) for name, data in plan.datasets.items()
                    if any(j.dataset_name == name for j in missing)}
    pending = {
        task.remote(job, dataset_refs[job.dataset_name], str(store.root.resolve()), threads): job
        for job in missing
    }
    console.print(f"  embedding {len(missing)} (embedder, dataset) pairs "
                  f"on {'GPU' if has_gpu else 'CPU'}")
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            name = f"{job.dataset_name} x {job.embedder.name}"
            try:
                info = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if exc.cause is not None else exc
                errors[job.key] = f"embedding {name} failed: {type(cause).__name__}: {cause}"
                console.print(f"  [red]{errors[job.key]}[/red]", highlight=False)
                continue
            except ray.exceptions.RayError as exc:  # retries exhausted
                errors[job.key] = f"embedding {name} failed: {type(exc).__name__}: {exc}"
                console.print(f"  [red]{errors[job.key]}[/red]", highlight=False)
                continue
            console.print(f"  embedded {name}: {info['rows']} texts "
                          f"in {info['seconds']:.1f} s on {info['device']}")
            data = _read_entry(plan, store, job, console)
            if data is None:
                errors[job.key] = f"embedding {name}: the written entry does not verify"
                console.print(f"  [red]{errors[job.key]}[/red]", highlight=False)
                continue
            loaded[job.key] = data
    except KeyboardInterrupt:
        for ref in pending:  # workers write by rename: a cancelled task leaves no partial file
            ray.cancel(ref, force=True)
        raise
    if raise_at_end and errors:
        raise EmbeddingError("\n".join(errors.values()))
    return loaded


def _remove_leftovers(store: EmbeddingStore, job: EmbeddingJob) -> None:
    """Remove a half entry (one split only) and temporaries of a write that was killed."""
    store.remove(job.dataset_name, job.embedder.name, job.key)
    directory = store.directory(job.dataset_name, job.embedder.name, job.key)
    if directory.is_dir():
        for leftover in directory.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def _read_entry(plan: Plan, store: EmbeddingStore, job: EmbeddingJob, console: Console
                ) -> TrialData | None:
    """Read and verify both splits; None when missing or damaged (damaged ones are removed).

    The store checks each file (Parquet structure, schema, row count, checksum); here the
    entry is also checked against the dataset it claims to embed (rows, labels, dimension).
    Every damaged file is reported, then the entry is removed to be recomputed.
    """
    if not store.has(job.dataset_name, job.embedder.name, job.key):
        return None
    dataset = plan.datasets.get(job.dataset_name)
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
            console.print(f"  [yellow]store: {problem}; recomputing[/yellow]", highlight=False)
        store.remove(job.dataset_name, job.embedder.name, job.key)
        return None
    train, test = tables["train"], tables["test"]
    return TrialData(
        train_x=np.asarray(train.embeddings, dtype=np.float32),
        train_y=train.labels,
        test_x=np.asarray(test.embeddings, dtype=np.float32),
        test_y=test.labels,
    )


# --------------------------------------------------------------------------- trajectory stage


class TrajectoryStage:
    """Fans trials out to a pool of actors and streams their cycles into MLflow."""

    def __init__(self, plan: Plan, tracker: Tracker, checkpoints: CheckpointStore,
                 data: dict[str, TrialData], console: Console, retire_older: bool = False) -> None:
        self.plan = plan
        self.tracker = tracker
        self.retire_older = retire_older
        self.checkpoints = checkpoints
        self.console = console
        self.data = data
        self.data_refs = {key: ray.put(value) for key, value in data.items()}
        resources = plan.config.resources
        # max_restarts=0 on purpose: see the module docstring (the driver resubmits from the
        # latest checkpoint instead of Ray re-running the generator from its first arguments).
        self.actor_class = ray.remote(TrajectoryWorker).options(
            num_cpus=resources.cpus_per_trajectory, max_restarts=0, max_task_retries=0
        )
        cpus = ray.cluster_resources().get("CPU", 1)
        self.n_actors = resources.max_concurrency or max(1, int(cpus // resources.cpus_per_trajectory))

    def run(self, trials: list[TrialSpec], existing: dict[str, TrialRun], summary: RunSummary) -> None:
        queue: deque[_Trial] = deque(_Trial(t) for t in trials)
        starting: dict[object, object] = {}  # readiness probe -> actor not yet up
        idle: list[object] = []
        active: dict[object, _Active] = {}
        for _ in range(min(self.n_actors, len(trials))):
            self._new_actor(starting)
        start_failures = 0
        last_flush = last_progress = time.monotonic()
        warned = False
        columns = (TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[failed]} failed"))
        with Progress(*columns, console=self.console, transient=False) as progress:
            bar = progress.add_task("trials", total=len(trials), failed=0)
            try:
                while queue or active:
                    while idle and queue:
                        self._start(queue.popleft(), idle.pop(), existing, active)
                    ready, _ = ray.wait([*active, *starting], num_returns=1, timeout=FLUSH_SECONDS)
                    if ready or active:
                        last_progress = time.monotonic()
                    elif not warned and time.monotonic() - last_progress > WAITING_NOTICE_SECONDS:
                        warned = True
                        self.console.print(
                            f"  [yellow]{len(queue)} trials wait for a trajectory actor: the "
                            f"cluster has no free {self.plan.config.resources.cpus_per_trajectory} "
                            "CPU for one (lost nodes come back, or add some)[/yellow]")
                    for ref in ready:
                        if ref in starting:
                            actor = starting.pop(ref)
                            try:
                                ray.get(ref)
                                idle.append(actor)
                            except ray.exceptions.RayError as exc:  # died while starting
                                start_failures += 1
                                if not starting and not idle and not active:
                                    if start_failures > MAX_ACTOR_START_FAILURES:
                                        raise RuntimeError(
                                            f"trajectory actors keep dying while starting: {exc}"
                                        ) from exc
                                    self._new_actor(starting)
                            continue
                        state = active[ref]
                        outcome = self._advance(ref, state)
                        if outcome is None:
                            continue
                        del active[ref]
                        if outcome == "finished":
                            summary.finished += 1
                            idle.append(state.actor)
                        elif isinstance(outcome, tuple) and outcome[0] == "restart":
                            self._kill(state.actor)
                            self._new_actor(starting)  # a replacement; it gets work once up
                            item = state.item
                            item.restarts += 1
                            if item.restarts > MAX_ACTOR_RESTARTS_PER_TRIAL:
                                self._fail(item, f"its trajectory worker died {item.restarts} times "
                                           f"(last: {outcome[1]})", outcome[2], summary)
                            else:
                                summary.resubmitted += 1
                                self.console.print(
                                    f"  [yellow]worker lost ({outcome[1]}); {_describe(item.trial)} "
                                    "resubmitted from its checkpoint[/yellow]", highlight=False)
                                queue.appendleft(item)
                        else:
                            self._fail(state.item, *outcome, summary)
                            idle.append(state.actor)
                        progress.update(bar, completed=summary.finished + len(summary.failed),
                                        failed=len(summary.failed))
                    if time.monotonic() - last_flush >= FLUSH_SECONDS:
                        self._flush(active.values())
                        last_flush = time.monotonic()
            except KeyboardInterrupt:
                summary.interrupted = True
                self._stop_interrupted(list(active.values()))
                raise
            finally:
                for actor in [*idle, *starting.values(), *(s.actor for s in active.values())]:
                    self._kill(actor)

    def _new_actor(self, starting: dict) -> None:
        actor = self.actor_class.remote()
        starting[actor.pid.remote()] = actor

    @staticmethod
    def _kill(actor) -> None:
        with contextlib.suppress(Exception):  # already dead, or its node is gone
            ray.kill(actor, no_restart=True)

    def _start(self, item: _Trial, actor, existing: dict[str, TrialRun], active: dict) -> None:
        checkpoint: Checkpoint | None
        if item.run_id is None:
            previous = existing.get(item.trial.trial_key)
            if previous is not None and previous.status != "FINISHED":
                item.run_id = previous.run_id
                self.tracker.reopen(item.run_id, item.trial)
                item.logged = self.tracker.logged_points(item.run_id, CYCLE_METRICS)
                checkpoint = self._checkpoint(item)
            else:
                item.supersedes = self.retire_older
                item.run_id = self.tracker.start_trial(item.trial)
                item.logged = {name: set() for name in CYCLE_METRICS}
                checkpoint = None  # a fresh run starts from scratch
                self.checkpoints.remove(item.trial.trial_key)
        else:  # resubmitted after its actor died: same run, latest checkpoint
            checkpoint = self._checkpoint(item)
        generator = actor.run.remote(item.trial, self.data_refs[item.trial.embedding_key], checkpoint)
        active[generator] = _Active(item, actor)

    def _checkpoint(self, item: _Trial) -> Checkpoint | None:
        """The trial's checkpoint if it is consistent with its protocol (else: from scratch)."""
        checkpoint = self.checkpoints.load(item.trial.trial_key)
        protocol = item.trial.protocol
        if checkpoint is None:
            return None
        expected = protocol.initial_pool_size + checkpoint.cycle * protocol.query_size
        if not 0 <= checkpoint.cycle <= protocol.n_cycles or len(checkpoint.labelled_order) != expected:
            return None
        return checkpoint

    def _advance(self, generator, state: _Active):
        """Consume one item: None while running, 'finished', ('restart', why, trace) or
        (error, traceback)."""
        try:
            record = ray.get(next(generator))
        except StopIteration:
            self._flush([state], checkpoint=False)  # finished: no checkpoint to keep
            self._finish(state)
            return "finished"
        except ray.exceptions.RayTaskError as exc:
            self._flush([state])
            cause = exc.cause if exc.cause is not None else exc
            if isinstance(cause, INFRASTRUCTURE_ERRORS):
                self._lost(cause, state)
                return ("restart", type(cause).__name__, str(exc))
            return (f"{type(cause).__name__}: {cause}", _remote_traceback(exc))
        except INFRASTRUCTURE_ERRORS as exc:
            self._flush([state])
            self._lost(exc, state)
            return ("restart", type(exc).__name__, traceback.format_exc())
        state.buffer.append(record)
        return None

    def _lost(self, error: Exception, state: _Active) -> None:
        """Put the trial's embeddings again when their object was lost with a node."""
        if isinstance(error, ray.exceptions.ObjectLostError):
            key = state.item.trial.embedding_key
            self.data_refs[key] = ray.put(self.data[key])

    def _stop_interrupted(self, states: list[_Active]) -> None:
        """After Ctrl-C or SIGTERM: stop the work, log what was streamed, mark the runs KILLED.

        The interrupt may have landed inside a flush, after MLflow committed a batch but before
        the driver noted it; the steps already logged are read back from MLflow first, so none
        is logged twice.
        """
        for state in states:
            self._kill(state.actor)
        for state in states:
            state.item.logged = self.tracker.logged_points(state.item.run_id, CYCLE_METRICS)
        self._flush(states)
        for state in states:
            self.tracker.fail(state.item.run_id, "interrupted (Ctrl-C or SIGTERM)",
                              "interrupted (Ctrl-C or SIGTERM); `albench run` resumes it from its "
                              "checkpoint", status="KILLED")

    def _flush(self, states, checkpoint: bool = True) -> None:
        """Log buffered cycles (skipping points already in MLflow), then save checkpoints."""
        timestamp = int(time.time() * 1000)
        for state in states:
            if not state.buffer:
                continue
            item = state.item
            rows = []
            for record in state.buffer:
                for name, value in record.metrics().items():
                    steps = item.logged.setdefault(name, set())
                    if record.n_labelled not in steps:
                        rows.append((name, value, record.n_labelled))
            if rows:
                self.tracker.log_metrics(item.run_id, rows, timestamp)
                for name, _, step in rows:
                    item.logged[name].add(step)
            if checkpoint:
                self.checkpoints.save(item.trial.trial_key, state.buffer[-1].checkpoint)
            state.buffer.clear()

    def _finish(self, state: _Active) -> None:
        item = state.item
        summary = curve_summary(self.tracker, item.run_id)
        self.tracker.finish(item.run_id, summary, int(time.time() * 1000))
        if item.supersedes:
            self.tracker.retire_others(item.trial.trial_key, item.run_id)
        self.checkpoints.remove(item.trial.trial_key)

    def _fail(self, item: _Trial, error: str, trace: str, summary: RunSummary) -> None:
        self.tracker.fail(item.run_id, error, trace or error)
        summary.failed.append((item.trial, error))


def _remote_traceback(exc: Exception) -> str:
    """The worker's traceback as Ray reports it, without terminal colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    return f"Traceback (most recent call last, in the trajectory worker):\n{text}\n"


def _describe(trial: TrialSpec) -> str:
    return (f"{trial.dataset} / {trial.embedder} / {trial.initial_pool.label} / "
            f"{trial.strategy.label} / seed {trial.seed}")


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


# ------------------------------------------------------------------------------------ the grid


def select_trials(plan: Plan, existing: dict[str, TrialRun], *, force: bool = False,
                  rerun_failed: bool = True) -> tuple[list[TrialSpec], int]:
    """The trials to run now, and how many are skipped.

    Skipped: trials with a FINISHED run (unless ``force``) and, with ``rerun_failed=False``
    (``--only-missing``), trials whose run FAILED. Interrupted runs (RUNNING after a killed
    driver, KILLED after Ctrl-C) always resume.
    """
    todo, skipped = [], 0
    for trial in plan.trials:
        previous = existing.get(trial.trial_key)
        done = previous is not None and (
            previous.status == "FINISHED" or (previous.status == "FAILED" and not rerun_failed))
        if done and not force:
            skipped += 1
            continue
        todo.append(trial)
    return todo, skipped


def run_grid(plan: Plan, tracker: Tracker, console: Console, *, force: bool = False,
             rerun_failed: bool = True, sigterm_as_interrupt: bool = False) -> RunSummary:
    """Run every trial that has no FINISHED run yet, embedding only what those trials need.

    ``sigterm_as_interrupt``: SIGTERM (docker stop, a batch scheduler) stops the run like Ctrl-C,
    cleanly and resumable (the CLI sets it).
    """
    config = plan.config
    checkpoints = CheckpointStore(config.store.checkpoints)
    with checkpoints.lock():
        return _run_grid(plan, tracker, console, checkpoints, force=force, rerun_failed=rerun_failed,
                         sigterm_as_interrupt=sigterm_as_interrupt)


@contextlib.contextmanager
def _sigterm_raises_keyboard_interrupt(enabled: bool):
    """Installed after ``ray.init``, which puts its own SIGTERM handler (abort) in place."""
    import signal
    import threading

    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_grid(plan: Plan, tracker: Tracker, console: Console, checkpoints: CheckpointStore, *,
              force: bool, rerun_failed: bool, sigterm_as_interrupt: bool) -> RunSummary:
    config = plan.config
    summary = RunSummary()
    console.print(f"[bold]{config.name}[/bold]: {len(plan.trials)} trials, "
                  f"{len(plan.jobs)} (embedder, dataset) pairs")
    existing = tracker.trial_runs()
    todo, summary.skipped = select_trials(plan, existing, force=force, rerun_failed=rerun_failed)
    if force:  # every forced trial gets a new run; the old ones are retired when it finishes
        for trial in todo:
            existing.pop(trial.trial_key, None)
    if summary.skipped:
        failed = sum(1 for t in plan.trials if t.trial_key in existing
                     and existing[t.trial_key].status == "FAILED" and t not in todo)
        console.print(f"  {summary.skipped - failed} trials already done in MLflow, skipped"
                      + (f"; {failed} FAILED trials skipped (--only-missing)" if failed else ""))
    if not todo:
        return summary
    init_ray()  # only now: a grid with nothing left to do never starts Ray
    with _sigterm_raises_keyboard_interrupt(sigterm_as_interrupt):
        _run_trials(plan, tracker, console, checkpoints, todo, existing, summary, retire_older=force)
    return summary


def _run_trials(plan: Plan, tracker: Tracker, console: Console, checkpoints: CheckpointStore,
                todo: list[TrialSpec], existing: dict[str, TrialRun], summary: RunSummary,
                retire_older: bool = False) -> None:
    config = plan.config
    store = EmbeddingStore(config.store.path)
    needed = {t.embedding_key for t in todo}
    errors: dict[str, str] = {}
    data = embedding_stage(plan, store, console, [j for j in plan.jobs if j.key in needed], errors)
    runnable = []
    for trial in todo:
        if trial.embedding_key in errors:
            run_id = _run_for(tracker, existing, trial)
            tracker.fail(run_id, errors[trial.embedding_key], errors[trial.embedding_key])
            summary.failed.append((trial, errors[trial.embedding_key]))
        else:
            runnable.append(trial)
    summary.resumed = sum(1 for t in runnable if t.trial_key in existing)
    if runnable:
        data = {k: v for k, v in data.items() if any(t.embedding_key == k for t in runnable)}
        stage = TrajectoryStage(plan, tracker, checkpoints, data, console, retire_older)
        resumed = f" ({summary.resumed} continue an earlier run)" if summary.resumed else ""
        console.print(f"  running {len(runnable)} trials{resumed} on {stage.n_actors} actors")
        stage.run(runnable, existing, summary)


def _run_for(tracker: Tracker, existing: dict[str, TrialRun], trial: TrialSpec) -> str:
    previous = existing.get(trial.trial_key)
    if previous is not None and previous.status != "FINISHED":
        tracker.reopen(previous.run_id, trial)
        return previous.run_id
    return tracker.start_trial(trial)
