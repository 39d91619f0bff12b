"""The driver's record of one trial: its run, its curve so far, the cycles not yet written.

The driver is the only writer of the tracker and of checkpoints. Trajectory actors stream one
record per cycle; the driver keeps each trial's curve in memory (it computes the summary from
it: nothing is read back) and hands what is new to the ``TrackingWriter`` in coalesced writes,
at most one per trial and flush. A trial's checkpoint is saved by the writer only after the
points it covers are recorded, so a resumed trial never logs a step twice and never misses one.
A short trial costs three tracker calls on a server (create, one batch, end) and a share of
one transaction per flush on a SQL store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from orchestrator.checkpoints import CheckpointStore
from orchestrator.report.cell_figures import CellFigures
from orchestrator.results import summarize
from orchestrator.resume import unfinished_run, usable_checkpoint
from orchestrator.tracking import ERROR_TAG, GridHeldError, RunStatus, Tracker, TrialRun, trial_params
from orchestrator.tracking.base import NODE_TAG, WARNING_TAG, Lease, RunRef, RunWrite, masked
from orchestrator.tracking.writer import TrackingWriter
from workers.specs import TrialSpec
from workers.trajectory import CYCLE_METRICS, Checkpoint, CycleRecord

INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


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
    writer: TrackingWriter | None = None
    outbox: list[RunWrite] = field(default_factory=list)
    """Writes made since the last ``send`` (ends of trials, first writes of new runs)."""
    curves: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    """run id -> metric -> step -> value already recorded, for the runs this session reopens."""
    figures: CellFigures | None = None
    """The figures of the (dataset, embedder) parent runs, fed each finished trial's curve."""

    def __post_init__(self) -> None:
        if self.writer is None:
            self.writer = TrackingWriter(self.tracker)

    def read_unfinished(self, trials: list[TrialSpec]) -> None:
        """Read, in bulk, the points of every run these trials reopen (their resumed curves)."""
        ids = [run_id for t in trials if (run_id := unfinished_run(self.existing, t)) is not None]
        for run_id, per_metric in self.tracker.curves(ids, CYCLE_METRICS).items():
            self.curves[run_id] = {m: dict(points) for m, points in per_metric.items()}

    def send(self, writes: list[RunWrite] = ()) -> None:
        """Hand the outbox and ``writes`` to the writer as one flush."""
        batch, self.outbox = [*self.outbox, *writes], []
        self.writer.submit(batch)

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
        self.ref = RunRef()
        self.points: dict[str, dict[int, float]] = {name: {} for name in CYCLE_METRICS}
        """Every point of the run's curves: recorded, or handed to the writer."""
        self.summary_recorded: set[str] = set()
        self.first: RunWrite | None = None
        """The run's opening write (create, or reopen), sent with its first points."""
        self.started = False
        self.supersedes = False
        """A new run of a ``--force`` rerun: the older runs of its key are retired when it ends."""
        self.restarts = 0
        """Times its trajectory worker died under it."""
        self.buffer: list[CycleRecord] = []
        self.latest: Checkpoint | None = None
        self.closed = False
        """Finished or failed in this session (an interrupt leaves it alone)."""
        self.nodes: list[str] = []
        """The Ray nodes its trajectory ran on in this session, in order (the ``albench.node`` tag)."""
        self.node_recorded: str | None = None
        self.began = 0
        """When its first cycle of this session began (epoch ms; 0 before any)."""
        self.last_cycle = 0
        """When its latest cycle ended (epoch ms): the run's end when it finishes."""

    @property
    def run_id(self) -> str | None:
        return self.ref.run_id

    def begin(self) -> Checkpoint | None:
        """Open the trial's run (on first use) and return the checkpoint to resume from.

        An unfinished run is reopened and continues from its checkpoint; otherwise a new run
        starts from scratch. After a lost worker (the run is open already), the latest one.
        """
        if self.started:  # a lost worker: from the latest checkpoint handed to the writer
            return self.latest or self.checkpoint()
        self.started = True
        recording = self.recording
        params = trial_params(self.trial)
        previous = recording.existing.get(self.trial.trial_key)
        if unfinished_run(recording.existing, self.trial) is not None:
            self.ref.run_id = previous.run_id
            recorded = recording.curves.get(previous.run_id, {})
            self.points = {name: dict(recorded.get(name, {})) for name in CYCLE_METRICS}
            self.summary_recorded = set(previous.metrics) - set(CYCLE_METRICS)
            self.first = RunWrite(self.ref, self.trial, reopen=True, params=params,
                                  clear_tags=(ERROR_TAG,) if ERROR_TAG in previous.tags else ())
            return self.checkpoint()
        warnings = recording.warnings.get(self.trial.dataset)
        self.supersedes = recording.retire_older
        self.first = RunWrite(self.ref, self.trial, params=params,
                              create={WARNING_TAG: " | ".join(warnings)} if warnings else {})
        recording.checkpoints.remove(self.trial.trial_key)  # a fresh run starts from scratch
        return None

    def checkpoint(self) -> Checkpoint | None:
        """The trial's checkpoint if it is consistent with its protocol."""
        return usable_checkpoint(self.recording.checkpoints.load(self.trial.trial_key),
                                 self.trial.protocol)

    def ran_on(self, node: str) -> None:
        """Its trajectory was handed to an actor on ``node`` (recorded with its next write)."""
        if node and (not self.nodes or self.nodes[-1] != node):
            self.nodes.append(node)

    def add(self, records: list[CycleRecord]) -> None:
        """Cycles streamed from the trajectory: the run starts when its first cycle began and
        ends when its last one ended (the worker's clock, not when the driver got to them)."""
        if records:
            if not self.began:
                self.began = round(1000 * records[0].began_at)
            self.last_cycle = round(1000 * records[-1].ended_at)
        self.buffer.extend(records)

    def flush(self) -> RunWrite | None:
        """The write of the cycles streamed since the last one (and of the run's opening), whose
        ``after`` saves the checkpoint they lead to; None when there is nothing to write."""
        if not self.buffer:
            return None
        last = self.latest = self.buffer[-1].checkpoint
        write = self._write()
        checkpoints, key = self.recording.checkpoints, self.trial.trial_key
        write.after = lambda: checkpoints.save(key, last)
        return write

    def finish(self) -> dict[str, float]:
        """The trajectory ended: write the rest and the summary of its curves, end the run."""
        write = self._write()
        summary = summarize({name: sorted(points.items()) for name, points in self.points.items()})
        write.metrics += [(k, v, 0) for k, v in summary.items() if k not in self.summary_recorded]
        if summary["single_class_cycles"]:
            write.tags[f"{WARNING_TAG}.learner"] = (
                f"the learner predicted one class for every test row in "
                f"{summary['single_class_cycles']:.0f} of {len(self.points['accuracy'])} cycles")
        write.end = RunStatus.FINISHED
        write.retire_others = self.supersedes
        checkpoints, key = self.recording.checkpoints, self.trial.trial_key
        write.after = lambda: checkpoints.remove(key)  # finished: no checkpoint to keep
        self.recording.outbox.append(write)
        self.closed = True
        if self.recording.figures is not None:
            self.recording.figures.add(self.trial, self.points[CellFigures.METRIC])
        return summary

    def fail(self, error: str, trace: str, status: RunStatus = RunStatus.FAILED) -> None:
        """End the run ``status`` with the error as its tag and the traceback as ``error.txt``;
        the cycles streamed before are written first (their checkpoint is saved)."""
        write = self.flush() or self._write()
        write.tags[ERROR_TAG] = masked(error)[:4000]
        write.error_text = masked(trace or error)
        write.end = status
        self.recording.outbox.append(write)
        self.closed = status == RunStatus.FAILED

    def interrupt(self) -> None:
        """After Ctrl-C or SIGTERM: write what was streamed, mark the run KILLED (it resumes)."""
        self.fail(INTERRUPTED, f"{INTERRUPTED}; `albench run` resumes it from its checkpoint", RunStatus.KILLED)

    @property
    def open(self) -> bool:
        """Its run is RUNNING in this session: it started and neither finished nor failed."""
        return self.started and not self.closed

    def _write(self) -> RunWrite:
        """A write of the buffered points the run has not got (with its opening write, if due)."""
        write, self.first = self.first or RunWrite(self.ref, self.trial), None
        write.timestamp = self.last_cycle or int(time.time() * 1000)
        write.start = self.began
        for record in self.buffer:
            for name, value in record.metrics().items():
                if record.n_labelled not in self.points[name]:
                    self.points[name][record.n_labelled] = value
                    write.metrics.append((name, value, record.n_labelled))
        self.buffer.clear()
        node = " -> ".join(self.nodes)
        if node and node != self.node_recorded:
            write.tags[NODE_TAG] = self.node_recorded = node
        return write
