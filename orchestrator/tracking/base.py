"""What the driver needs from a tracking backend: the ``Tracker`` protocol and its records.

The driver is the only writer. A backend keeps one experiment per config, one run per trial
(tagged with its ``trial_key``) and per-cycle metrics with ``step`` = number of labelled rows.
Every backend is a module of this package that registers a factory with ``register_backend``
(see ``orchestrator/tracking/__init__.py``); ``tracking.backend`` in a config picks one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from workers.specs import TrialSpec

TRIAL_KEY_TAG = "albench.trial_key"
GROUP_TAG = "albench.group"
ERROR_TAG = "albench.error"
WARNING_TAG = "albench.warnings"
"""Protocol warnings of a trial (classes only in the test split, a single-class learner...)."""


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


Curve = list[tuple[int, float]]
"""(step, value) points, ascending by step."""


@dataclass(frozen=True)
class TrialRun:
    """What the backend knows about one run of a trial key."""

    run_id: str
    status: str
    trial_key: str
    tags: dict
    metrics: dict
    start_time: int = 0
    end_time: int = 0
    params: dict | None = None

    def rank(self) -> tuple:
        """Order of preference among runs of one key: FINISHED first, then the latest started."""
        return (self.status == "FINISHED", self.start_time or 0, self.end_time or 0, self.run_id)


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
    return {k: str(v) for k, v in params.items()}


class Tracker(Protocol):
    """The runs of one experiment, as the driver writes and reads them."""

    uri: str

    # reading
    def all_trial_runs(self, trial_key: str | None = None) -> list[TrialRun]:
        """Every live run of the experiment that carries a trial key (or of one key), in bulk."""
        ...

    def trial_runs(self) -> dict[str, TrialRun]:
        """One run per trial key (``best_runs`` of ``all_trial_runs``)."""
        ...

    def logged_points(self, run_id: str, metrics: Iterable[str]) -> dict[str, set[int]]:
        """Steps already recorded, per metric (a resumed run logs only the others)."""
        ...

    def curve(self, run_id: str, metric: str = "accuracy") -> Curve:
        """One metric's points of one run."""
        ...

    def curves(self, run_ids: list[str], metrics: Iterable[str]) -> dict[str, dict[str, Curve]]:
        """run id -> metric -> points, for many runs at once (bulk where the backend can)."""
        ...

    def lease_holder(self) -> str | None:
        """The driver holding the grid's lease right now (host:pid:start), or None."""
        ...

    # writing
    def lease(self) -> Lease:
        """The grid's lease for this driver (not yet taken)."""
        ...

    def start_trial(self, trial: TrialSpec, tags: dict[str, str] | None = None) -> str:
        """A new RUNNING run with the trial's params, key and ``tags``; its id."""
        ...

    def reopen(self, run_id: str, trial: TrialSpec | None = None) -> None:
        """Mark an interrupted or failed run RUNNING again before it resumes."""
        ...

    def log_metrics(self, run_id: str, rows: list[tuple[str, float, int]], timestamp: int) -> None:
        """Record (name, value, step) rows."""
        ...

    def finish(self, run_id: str, summary: dict[str, float], timestamp: int,
               tags: dict[str, str] | None = None) -> None:
        """Record the summary metrics not recorded yet, ``tags``, and end the run FINISHED."""
        ...

    def fail(self, run_id: str, error: str, traceback_text: str, status: str = "FAILED") -> None:
        """End the run FAILED (or KILLED) with its error and traceback."""
        ...

    def retire_others(self, trial_key: str, keep: str) -> list[str]:
        """Retire (restorably) every other run of ``trial_key``; their ids."""
        ...
