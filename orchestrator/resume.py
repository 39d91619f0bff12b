"""Which trials run now, and how an interrupted one continues.

A grid is idempotent: a trial whose key has a FINISHED run is skipped; an unfinished run
(RUNNING after a killed driver, KILLED after Ctrl-C, FAILED) is reopened and its trajectory
resumes from its last checkpoint, skipping the (metric, step) points the tracker already has.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.tracking import RunStatus, TrialRun
from workers.specs import ProtocolSpec, TrialSpec
from workers.trajectory import Checkpoint


def select_trials(trials: Iterable[TrialSpec], existing: dict[str, TrialRun], *, force: bool = False,
                  rerun_failed: bool = True) -> tuple[list[TrialSpec], int]:
    """The trials to run now, and how many are skipped.

    Skipped: trials with a FINISHED run (unless ``force``) and, with ``rerun_failed=False``
    (``--only-missing``), trials whose run FAILED. Interrupted runs (RUNNING after a killed
    driver, KILLED after Ctrl-C) always resume.
    """
    todo, skipped = [], 0
    for trial in trials:
        previous = existing.get(trial.trial_key)
        done = previous is not None and (
            previous.status == RunStatus.FINISHED or (previous.status == RunStatus.FAILED and not rerun_failed))
        if done and not force:
            skipped += 1
            continue
        todo.append(trial)
    return todo, skipped


def unfinished_run(existing: dict[str, TrialRun], trial: TrialSpec) -> str | None:
    """The run id a trial continues (its latest run, unless that one FINISHED)."""
    previous = existing.get(trial.trial_key)
    if previous is not None and previous.status != RunStatus.FINISHED:
        return previous.run_id
    return None


def usable_checkpoint(checkpoint: Checkpoint | None, protocol: ProtocolSpec) -> Checkpoint | None:
    """The checkpoint if it is consistent with the trial's protocol (else: from scratch)."""
    if checkpoint is None:
        return None
    expected = protocol.initial_pool_size + checkpoint.cycle * protocol.query_size
    if not 0 <= checkpoint.cycle <= protocol.n_cycles or len(checkpoint.labelled_order) != expected:
        return None
    return checkpoint
