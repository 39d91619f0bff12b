"""The Ray side of the trajectory stage: an actor that runs one trajectory at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator

from workers.specs import TrialSpec
from workers.trajectory import Checkpoint, CycleRecord, InitialPoolCache, TrialData, run_trajectory

STREAM_SECONDS = 0.25
"""Cycles are sent to the driver in batches of what this many seconds produced. Each object a
generator yields costs about 0.4 ms of the actor's and 0.4 ms of the driver's CPU (measured on
2 cores), a cycle of a small grid a few ms; the driver writes once a second
(``FLUSH_SECONDS``) anyway. A worker that dies loses at most this much work and the cycle
under way: its trial resumes from the last checkpoint the driver received, to the same curve."""


class TrajectoryWorker:
    """Runs trajectories and streams their cycles back (a Ray streaming generator method).

    The embeddings arrive as a shared read-only object from the Ray object store; nothing is
    copied per trial. The driver is the only writer of MLflow and checkpoints, so an actor holds
    no state worth keeping (only a cache of the initial pools it selected, which sibling trials
    reuse and any actor can recompute): when one dies (its process killed, its node lost) the driver
    resubmits the trial to another actor with the last checkpoint it saved. The driver calls
    ``node`` once as a readiness probe before giving an actor work, and records its answer with
    each trial the actor runs.
    """

    def __init__(self) -> None:
        self.initial_pools = InitialPoolCache()

    def run(self, trial: TrialSpec, data: TrialData, resume: Checkpoint | None = None
            ) -> Iterator[list[CycleRecord]]:
        """The trial's cycles, in order, in batches: what ``STREAM_SECONDS`` produced (the
        last batch when the trajectory ends)."""
        batch: list[CycleRecord] = []
        sent = time.monotonic()
        for record in run_trajectory(trial, data, resume, self.initial_pools):
            batch.append(record)
            if time.monotonic() - sent >= STREAM_SECONDS:
                yield batch
                batch, sent = [], time.monotonic()
        if batch:
            yield batch

    def node(self) -> str:
        """Where this actor runs: the host name and the Ray node id."""
        import socket

        import ray

        return f"{socket.gethostname()} {ray.get_runtime_context().get_node_id()}"

    def pid(self) -> int:
        import os

        return os.getpid()
