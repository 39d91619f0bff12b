"""The Ray side of the trajectory stage: an actor that runs one trajectory at a time."""

from __future__ import annotations

from collections.abc import Iterator

from workers.specs import TrialSpec
from workers.trajectory import Checkpoint, CycleRecord, TrialData, run_trajectory


class TrajectoryWorker:
    """Runs trajectories and streams their cycles back (a Ray streaming generator method).

    The embeddings arrive as a shared read-only object from the Ray object store; nothing is
    copied per trial. The driver is the only writer of MLflow and checkpoints.
    """

    def run(self, trial: TrialSpec, data: TrialData, resume: Checkpoint | None = None
            ) -> Iterator[CycleRecord]:
        yield from run_trajectory(trial, data, resume)

    def pid(self) -> int:
        import os

        return os.getpid()
