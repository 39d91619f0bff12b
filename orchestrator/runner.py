"""A grid run: pick the trials, embed what they need, run their trajectories.

The stages live in their own modules: ``resume`` (which trials, from where), ``embedding_stage``
(the store), ``trajectory_stage`` and ``actor_pool`` (Ray actors), ``trial_log`` (what the
driver writes per trial). The driver is the only writer of the tracker and of checkpoints, and
one driver at a time holds a grid (the lock of ``CheckpointStore``). A grid with nothing left
to do never starts Ray.
"""

from __future__ import annotations

from orchestrator.checkpoints import CheckpointStore
from orchestrator.cluster import check_resources
from orchestrator.console import Reporter
from orchestrator.embedding_stage import embedding_stage, record_stage
from orchestrator.grid import Plan
from orchestrator.ray_runtime import init_ray, sigterm_raises_keyboard_interrupt
from orchestrator.report.cell_figures import CellFigures
from orchestrator.resume import select_trials
from orchestrator.tracking import RunStatus, Tracker
from orchestrator.tracking.base import Lease
from orchestrator.tracking.writer import TrackingWriter
from orchestrator.trajectory_stage import INTERRUPT_WRITE_SECONDS, RunSummary, actor_count, run_trajectories
from orchestrator.trial_log import Recording, TrialLog
from workers.store import EmbeddingStore

__all__ = ["RunSummary", "run_grid"]


def run_grid(plan: Plan, tracker: Tracker, reporter: Reporter, *, force: bool = False,
             rerun_failed: bool = True, sigterm_as_interrupt: bool = False) -> RunSummary:
    """Run every trial that has no FINISHED run yet, embedding only what those trials need.

    ``force``: every trial gets a new run; the old ones are retired when it finishes.
    ``rerun_failed=False`` (``--only-missing``): FAILED trials are skipped too.
    ``sigterm_as_interrupt``: SIGTERM (docker stop, a batch scheduler) stops the run like
    Ctrl-C, cleanly and resumable (the CLI sets it).
    """
    config = plan.config
    checkpoints = CheckpointStore(config.store.checkpoints)
    lease = tracker.lease()
    with checkpoints.lock():
        lease.acquire()  # where the results live: two drivers cannot both win, on any machines
        try:
            return _run_grid(plan, tracker, reporter, checkpoints, lease, force=force,
                             rerun_failed=rerun_failed, sigterm_as_interrupt=sigterm_as_interrupt)
        finally:
            lease.release()


def _run_grid(plan: Plan, tracker: Tracker, reporter: Reporter, checkpoints: CheckpointStore, lease: Lease, *,
              force: bool, rerun_failed: bool, sigterm_as_interrupt: bool) -> RunSummary:
    config = plan.config
    summary = RunSummary()
    reporter.grid(config.name, len(plan.trials), len(plan.jobs))
    existing = tracker.trial_runs(with_params=False)
    for key in checkpoints.trial_keys():  # a driver killed between a trial's end and this removal
        if key in existing and existing[key].status == RunStatus.FINISHED:
            checkpoints.remove(key)
    todo, summary.skipped = select_trials(plan.trials, existing, force=force, rerun_failed=rerun_failed)
    if force:  # every forced trial gets a new run
        for trial in todo:
            existing.pop(trial.trial_key, None)
    if summary.skipped:
        chosen = {t.trial_key for t in todo}
        failed = sum(1 for t in plan.trials if t.trial_key not in chosen
                     and t.trial_key in existing and existing[t.trial_key].status == RunStatus.FAILED)
        reporter.skipped(summary.skipped - failed, failed)
    if not todo:
        return summary
    init_ray()  # only now: a grid with nothing left to do never starts Ray
    check_resources(config.resources, reporter)  # before any run is opened
    recording = Recording(tracker, checkpoints, existing, retire_older=force, lease=lease,
                          figures=CellFigures(tracker, plan.trials, existing),
                          writer=TrackingWriter(tracker, outage_seconds=config.tracking.outage_seconds))
    ended = False
    try:
        with sigterm_raises_keyboard_interrupt(sigterm_as_interrupt):
            _run(plan, recording, todo, reporter, summary)
        ended = True
    finally:  # after an error or an interrupt: no more waiting on a store that may be gone
        recording.writer.close(timeout=None if ended else INTERRUPT_WRITE_SECONDS)
        if recording.writer.failed:
            lease.abandon()  # not released in a store that does not answer: it expires
        elif not lease.lost.is_set():  # the parents' figures, once more with every trial that ended
            recording.figures.close()
    return summary


def _run(plan: Plan, recording: Recording, todo, reporter: Reporter, summary: RunSummary) -> None:
    resources = plan.config.resources
    needed = {t.embedding_key for t in todo}
    embedded = embedding_stage([j for j in plan.jobs if j.key in needed], plan.datasets,
                               EmbeddingStore(plan.config.store.path), resources, reporter)
    record_stage(recording.tracker, embedded)
    runnable = []
    for trial in todo:
        error = embedded.errors.get(trial.embedding_key)
        if error is None:
            runnable.append(trial)
            continue
        log = TrialLog(trial, recording)
        log.begin()
        log.fail(error, error)
        summary.failed.append((trial, error))
    recording.send()
    summary.resumed = sum(1 for t in runnable if t.trial_key in recording.existing)
    if runnable:
        keys = {t.embedding_key for t in runnable}
        data = {k: v for k, v in embedded.data.items() if k in keys}
        recording.read_unfinished(runnable)
        reporter.running(len(runnable), summary.resumed, actor_count(resources))
        run_trajectories(runnable, data, recording, resources, reporter, summary)
    recording.writer.drain()
