"""What albench needs from a tracking backend, in three parts: ``RunWriter`` (what the driver
writes), ``RunReader`` (what ``status``, resume and the report read) and ``LeaseKeeper`` (one
driver per grid); a backend's tracker is all three (``Tracker``). Also its records.

The driver is the only writer. A backend keeps one experiment per config, one run per trial
(tagged with its ``trial_key``) and per-cycle metrics with ``step`` = number of labelled rows.
A backend is a class registered in ``orchestrator.tracking.BACKENDS`` (another package's through
the entry-point group ``albench.tracking``), built as ``cls(uri, experiment, create)``;
``tracking.backend`` in a config picks one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from workers.specs import TrialSpec

TRIAL_KEY_TAG = "albench.trial_key"
GROUP_TAG = "albench.group"
ERROR_TAG = "albench.error"
WARNING_TAG = "albench.warnings"
"""Protocol warnings of a trial (classes only in the test split, a single-class learner...)."""
KIND_TAG = "albench.kind"
"""What a run that is not a trial is: ``embedding`` (one embedding stage), ``report`` (the grid's
report run). Such runs carry no trial key, so ``status``, resume and the results never see them."""
NODE_TAG = "albench.node"
"""Where a trial ran: ``host node-id`` of its trajectory actor's Ray node (``a -> b`` when it was
resubmitted to another node in one session). Not part of the trial key or of any curve."""
REPORT_KIND = "report"


_PASSWORD_IN_URI = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*):[^@\s]*@")
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|token|access_token|secret)=)[^&;\s'\"]+",
                                re.IGNORECASE)
MASK = "***"


def masked(text: str) -> str:
    """``text`` with the password of every URI in it (``scheme://user:password@host``, or
    ``?password=...``) replaced by ``***``: what albench shows of a tracking URI anywhere (the
    terminal, errors, MLflow params and tags, the report)."""
    text = _PASSWORD_IN_URI.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    return _PASSWORD_IN_QUERY.sub(lambda m: f"{m.group('head')}{MASK}", text)


class TrackingURIError(ValueError):
    """``tracking.uri`` cannot be used; the message names the field and the fix."""


class GridHeldError(RuntimeError):
    """Another live driver holds the grid (its lease in the tracking store)."""


class Lease(Protocol):
    """One driver per grid: taken before any work, renewed while it runs, released at the end."""

    lost: object
    """Set (``lost.is_set()``) when another driver took the lease over: stop writing at once."""

    def acquire(self) -> None:
        """Take the lease, or raise ``GridHeldError`` naming the driver that holds it."""
        ...

    def release(self) -> None: ...

    def abandon(self) -> None:
        """Stop holding it without a word to the tracking store (which does not answer)."""
        ...


class RunStatus(str, enum.Enum):
    """The status of a run, as every backend records it (MLflow's names)."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    def __str__(self) -> str:
        return self.value


Curve = list[tuple[int, float]]
"""(step, value) points, ascending by step."""


@dataclass(frozen=True)
class TrialRun:
    """What the backend knows about one run of a trial key."""

    run_id: str
    status: RunStatus
    trial_key: str
    tags: dict
    metrics: dict
    start_time: int = 0
    end_time: int = 0
    params: dict | None = None

    def rank(self) -> tuple:
        """Order of preference among runs of one key: FINISHED first, then the latest started."""
        return (self.status == RunStatus.FINISHED, self.start_time or 0, self.end_time or 0, self.run_id)


@dataclass
class RunRef:
    """A trial's run as the writer knows it: its id once created (a new run gets one when its
    first write is applied; the writes of one run are applied in order)."""

    run_id: str | None = None


@dataclass
class RunWrite:
    """What one flush writes for one run, applied in this order and, where the backend can, in
    one transaction with the other writes of the flush:

    1. ``create`` (a new run, with these tags) or ``reopen`` (an interrupted one, RUNNING again,
       without the tags in ``clear_tags``);
    2. ``params``, ``metrics`` (name, value, step) and ``tags``;
    3. ``end`` (FINISHED, FAILED or KILLED) with ``error_text`` as its ``error.txt``;
       ``retire_others``: the other runs of its trial key are retired once it FINISHED;
    4. ``after`` (the driver's checkpoint), called once all of this is recorded.
    """

    ref: RunRef
    trial: TrialSpec
    create: dict[str, str] | None = None
    reopen: bool = False
    clear_tags: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    end: RunStatus | None = None
    error_text: str | None = None
    retire_others: bool = False
    timestamp: int = 0
    """Milliseconds since the epoch, of the metrics and of the end (the last cycle's)."""
    start: int = 0
    """Milliseconds since the epoch when the run began (its first cycle's start), for a write
    that creates it; 0: ``timestamp``."""
    after: Callable[[], None] | None = field(default=None, repr=False)


def best_runs(runs: Iterable[TrialRun]) -> dict[str, TrialRun]:
    """One run per trial key: the FINISHED one, else the latest (see ``TrialRun.rank``)."""
    chosen: dict[str, TrialRun] = {}
    for run in runs:
        previous = chosen.get(run.trial_key)
        if previous is None or run.rank() > previous.rank():
            chosen[run.trial_key] = run
    return chosen


def trial_params(trial: TrialSpec) -> dict[str, str]:
    """Flat params of a trial (dataset, embedder, pool, strategy, seed, protocol, learner)."""
    params = {
        "dataset": trial.dataset,
        "embedder": trial.embedder,
        "initial_pool": trial.initial_pool.label,
        "strategy": trial.strategy.label,
        "seed": trial.seed,
        "n_classes": trial.n_classes,
        "dataset_fingerprint": trial.dataset_fingerprint[:16],
        "embedding_key": trial.embedding_key[:16],
    }
    params.update({f"protocol.{k}": v for k, v in trial.protocol.model_dump().items()})
    params.update({f"learner.{k}": v for k, v in trial.learner.model_dump().items()})
    params.update({f"strategy.{k}": v for k, v in trial.strategy.params.items()})
    params.update({f"initial_pool.{k}": v for k, v in trial.initial_pool.params.items()})
    params.update({f"plugin.{k}": v for k, v in trial.plugins.items()})
    return {k: str(v) for k, v in params.items()}


class RunReader(Protocol):
    """The runs of one experiment as ``status``, resume and the report read them."""

    uri: str

    @property
    def exists(self) -> bool:
        """Whether the experiment exists in the store (a read-only command creates nothing)."""
        ...

    def all_trial_runs(self, trial_key: str | None = None, *, with_params: bool = True) -> list[TrialRun]:
        """Every live run of the experiment that carries a trial key (or of one key), in bulk;
        ``with_params=False`` leaves the params out (``TrialRun.params`` None)."""
        ...

    def trial_runs(self, *, with_params: bool = True) -> dict[str, TrialRun]:
        """One run per trial key (``best_runs`` of ``all_trial_runs``)."""
        ...

    def curve(self, run_id: str, metric: str = "accuracy") -> Curve:
        """One metric's points of one run."""
        ...

    def curves(self, run_ids: list[str], metrics: Iterable[str]) -> dict[str, dict[str, Curve]]:
        """run id -> metric -> points, for many runs at once (bulk where the backend can)."""
        ...

    def ui_link(self, ui: str) -> str | None:
        """The page of the experiment's runs in the backend's UI served at ``ui`` (a base
        address), or None (no experiment yet, or no UI)."""
        ...


class LeaseKeeper(Protocol):
    """One driver per grid, kept in the tracking store."""

    def lease(self) -> Lease:
        """The grid's lease for this driver (not yet taken)."""
        ...

    def lease_holder(self) -> str | None:
        """The driver holding the grid's lease right now (host:pid:start), or None."""
        ...


class RunWriter(Protocol):
    """What the driver writes: trial runs (through ``orchestrator.tracking.writer``), stage
    runs, and artifacts (files beside the runs, not in the run tables)."""

    concurrency: int
    """Writes the backend takes at once: 1 for a database file (one writer), more for a server."""

    def apply(self, writes: list[RunWrite]) -> None:
        """Record ``writes`` (in order; several runs in one transaction where the backend can),
        then call each one's ``after``. A write whose run has no id yet creates it first."""
        ...

    def retire_others(self, trial_key: str, keep: str) -> list[str]:
        """Retire (restorably) every other run of ``trial_key``; their ids."""
        ...

    def log_stage(self, kind: str, name: str, *, params: dict[str, str], metrics: dict[str, float],
                  tags: dict[str, str] | None = None, started: float | None = None) -> str:
        """One finished run of a stage (tagged ``KIND_TAG``: never read as a trial), from
        ``started`` (epoch seconds; default now) to now; its id."""
        ...

    def publish_report(self, folder: Path) -> str:
        """Log the files of ``folder`` (a built report) as the artifacts of the experiment's one
        report run (``KIND_TAG`` = ``REPORT_KIND``, no trial key), created on first use and
        reused after: files an earlier report left and this one lacks are removed. Its run id."""
        ...

    def log_cell_figure(self, dataset: str, embedder: str, image: Path) -> bool:
        """Attach ``image`` to the run grouping the (dataset, embedder) cell, under its file
        name, replacing the earlier file of that name; False (nothing done) while that run does
        not exist yet (the writer creates it, with the cell's first trial)."""
        ...


class Tracker(RunReader, RunWriter, LeaseKeeper, Protocol):
    """A backend's tracker for one experiment: ``cls(uri, experiment, create)`` of a registered
    backend class. ``create=False`` (read-only commands): a missing store or experiment reads
    as empty and is not created; a URI it cannot use raises ``TrackingURIError``."""

    @staticmethod
    def check(uri: str) -> None:
        """Raise ``TrackingURIError`` for a URI this backend cannot use (a quick check, before
        any work; nothing is created)."""
        ...
