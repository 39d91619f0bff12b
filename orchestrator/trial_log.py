"""The driver's record of one trial: its run, the points already logged, the cycles buffered.

The driver is the only writer of the tracker and of checkpoints. Trajectory actors stream one
record per cycle; the driver buffers them and logs them in batches, and only after a batch is
in the tracker does it save the trial's checkpoint, so a resumed trial never logs a step twice
and never misses one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from orchestrator.checkpoints import CheckpointStore
from orchestrator.results import SUMMARY_SOURCES, summarize
from orchestrator.resume import open_run, usable_checkpoint
from orchestrator.tracking import GridHeldError, Tracker, TrialRun
from orchestrator.tracking.base import WARNING_TAG, Lease
from workers.specs import TrialSpec
from workers.trajectory import CYCLE_METRICS, Checkpoint, CycleRecord


@dataclass
class Recording:
    """What every trial log of one driver session writes to, and what it found there."""

    tracker: Tracker
    checkpoints: CheckpointStore
    existing: dict[str, TrialRun] = field(default_factory=dict)
    """The trial runs the tracker held when the session started, by trial key."""
    retire_older: bool = False
    """``--force``: older runs of a key are retired once its new run finishes."""
    warnings: dict[str, list[str]] = field(default_factory=dict)
    """Protocol warnings per dataset name, recorded as a tag of each trial's run."""
    lease: Lease | None = None
    """The grid's lease; once another driver took it over, this one must not write again."""

    def check_lease(self) -> None:
        """Raise ``GridHeldError`` when the lease was lost (nothing more may be written)."""
        if self.lease is not None and self.lease.lost.is_set():
            raise GridHeldError("another albench run took this grid over (its lease in the "
                                "tracking store); this driver stopped without writing more")


class TrialLog:
    """One trial's state for this driver session (survives resubmissions to other actors)."""

    def __init__(self, trial: TrialSpec, recording: Recording) -> None:
        self.trial = trial
        self.recording = recording
        self.run_id: str | None = None
        self.logged: dict[str, set[int]] = {}
        self.restarts = 0
        """Times its trajectory worker died under it."""
        self.supersedes = False
        self.buffer: list[CycleRecord] = []
        self.closed = False
        """Finished or failed in this session (an interrupt leaves it alone)."""

    def begin(self) -> Checkpoint | None:
        """Open the trial's run (on first use) and return the checkpoint to resume from.

        An unfinished run is reopened and continues from its checkpoint; otherwise a new run
        starts from scratch. After a lost worker (the run is open already), the latest one.
        """
        if self.run_id is not None:
            return self.checkpoint()
        tracker = self.recording.tracker
        warnings = self.recording.warnings.get(self.trial.dataset)
        tags = {WARNING_TAG: " | ".join(warnings)} if warnings else None
        self.run_id, reopened = open_run(tracker, self.recording.existing, self.trial, tags)
        if reopened:
            self.logged = tracker.logged_points(self.run_id, CYCLE_METRICS)
            return self.checkpoint()
        self.supersedes = self.recording.retire_older
        self.logged = {name: set() for name in CYCLE_METRICS}
        self.recording.checkpoints.remove(self.trial.trial_key)  # a fresh run starts from scratch
        return None

    def checkpoint(self) -> Checkpoint | None:
        """The trial's checkpoint if it is consistent with its protocol."""
        return usable_checkpoint(self.recording.checkpoints.load(self.trial.trial_key),
                                 self.trial.protocol)

    def add(self, record: CycleRecord) -> None:
        self.buffer.append(record)

    def flush(self, checkpoint: bool = True) -> None:
        """Log buffered cycles (skipping points already logged), then save the checkpoint."""
        if not self.buffer:
            return
        rows = []
        for record in self.buffer:
            for name, value in record.metrics().items():
                if record.n_labelled not in self.logged.setdefault(name, set()):
                    rows.append((name, value, record.n_labelled))
        if rows:
            self.recording.tracker.log_metrics(self.run_id, rows, int(time.time() * 1000))
            for name, _, step in rows:
                self.logged[name].add(step)
        if checkpoint:
            self.recording.checkpoints.save(self.trial.trial_key, self.buffer[-1].checkpoint)
        self.buffer.clear()

    def finish(self) -> dict[str, float]:
        """The trajectory ended: log the rest, the summary of its curves, end the run."""
        self.flush(checkpoint=False)  # finished: no checkpoint to keep
        tracker = self.recording.tracker
        curves = {metric: tracker.curve(self.run_id, metric) for metric in SUMMARY_SOURCES}
        summary = summarize(curves)
        tags = None
        if summary["single_class_cycles"]:
            tags = {f"{WARNING_TAG}.learner": (
                f"the learner predicted one class for every test row in "
                f"{summary['single_class_cycles']:.0f} of {len(curves['accuracy'])} cycles")}
        tracker.finish(self.run_id, summary, int(time.time() * 1000), tags)
        self.closed = True
        if self.supersedes:
            tracker.retire_others(self.trial.trial_key, self.run_id)
        self.recording.checkpoints.remove(self.trial.trial_key)
        return summary

    def fail(self, error: str, trace: str) -> None:
        self.recording.tracker.fail(self.run_id, error, trace or error)
        self.closed = True

    @property
    def open(self) -> bool:
        """Its run is RUNNING in this session: it started and neither finished nor failed."""
        return self.run_id is not None and not self.closed

    def interrupt(self) -> None:
        """After Ctrl-C or SIGTERM: log what was streamed, mark the run KILLED (it resumes).

        The interrupt may have landed inside a flush, after the tracker committed a batch but
        before the driver noted it; the steps already logged are read back first, so none is
        logged twice.
        """
        tracker = self.recording.tracker
        self.logged = tracker.logged_points(self.run_id, CYCLE_METRICS)
        self.flush()
        tracker.fail(self.run_id, "interrupted (Ctrl-C or SIGTERM)",
                     "interrupted (Ctrl-C or SIGTERM); `albench run` resumes it from its checkpoint",
                     status="KILLED")
