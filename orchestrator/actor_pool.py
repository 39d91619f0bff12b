"""A pool of trajectory actors whose results come back as explicit outcome events.

The pool knows Ray, not the tracker: ``submit`` hands a trial to an idle actor, ``wait``
returns what happened since (``Streamed`` cycles, ``Finished``, ``Failed``, ``Lost``), in the
order it happened per trial.

Actors are created with ``max_restarts=0``. When one dies (worker killed, OOM, its node lost)
the trial comes back as ``Lost`` and a replacement actor is requested; the replacement only
receives work once it is up (its readiness probe answered), so one that cannot be placed,
because its node is gone, never holds a trial. Ray's own ``max_restarts`` + ``max_task_retries``
would re-execute the generator from its original arguments (cycle 0 or the checkpoint it
started from); the driver knows a later checkpoint, and resubmitting from it is the same code
path as resuming after a driver restart. The embeddings are ``ray.put`` by the pool (owned by
the driver, stored on its node); if a copy is lost anyway the pool puts it again.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import ray

from orchestrator.ray_runtime import INFRASTRUCTURE_ERRORS, kill_quietly, remote_traceback, task_error
from workers.actors import TrajectoryWorker
from workers.specs import TrialSpec
from workers.trajectory import Checkpoint, CycleRecord, TrialData

MAX_ACTOR_START_FAILURES = 10
"""Actors that may die while starting (their node lost) before the pool gives up."""


@dataclass(frozen=True)
class Streamed:
    """A trial's trajectory produced more cycles (in order; ``TrajectoryWorker.run`` batches)."""

    ticket: Any
    records: list[CycleRecord]


@dataclass(frozen=True)
class Finished:
    """A trial's trajectory ended; its actor is free again."""

    ticket: Any


@dataclass(frozen=True)
class Failed:
    """A trial's own code raised (deterministic: it would fail again); its actor is free."""

    ticket: Any
    error: str
    trace: str


@dataclass(frozen=True)
class Lost:
    """A trial's worker died (machinery, not the trial); a replacement actor was requested."""

    ticket: Any
    why: str
    trace: str


Outcome = Streamed | Finished | Failed | Lost


@dataclass
class _Running:
    ticket: Any
    trial: TrialSpec
    actor: object


@dataclass
class ActorPool:
    """Up to ``size`` trajectory actors of ``cpus`` CPUs each, over the arrays in ``data``."""

    data: dict[str, TrialData]
    size: int
    cpus: float
    refs: dict[str, object] = field(init=False)
    last_activity: float = field(init=False)
    """When something last happened or was running (for a 'waiting for CPUs' notice)."""

    def __post_init__(self) -> None:
        self.refs = {key: ray.put(value) for key, value in self.data.items()}
        self.actor_class = ray.remote(TrajectoryWorker).options(
            num_cpus=self.cpus, max_restarts=0, max_task_retries=0)
        self._starting: dict[object, object] = {}  # readiness probe -> actor not yet up
        self._nodes: dict[object, str] = {}  # actor -> where it runs (its probe's answer)
        self._idle: list[object] = []
        self._active: dict[object, _Running] = {}  # generator -> what it runs
        self._start_failures = 0
        self.last_activity = time.monotonic()

    def start(self, wanted: int) -> None:
        for _ in range(min(self.size, wanted)):
            self._new_actor()

    @property
    def has_idle(self) -> bool:
        return bool(self._idle)

    @property
    def busy(self) -> int:
        return len(self._active)

    def submit(self, ticket: Any, trial: TrialSpec, checkpoint: Checkpoint | None) -> str:
        """Run ``trial`` (from ``checkpoint``) on an idle actor; outcomes carry ``ticket``.
        Returns where the actor runs (``TrajectoryWorker.node``)."""
        actor = self._idle.pop()
        generator = actor.run.remote(trial, self.refs[trial.embedding_key], checkpoint)
        self._active[generator] = _Running(ticket, trial, actor)
        return self._nodes.get(actor, "")

    def wait(self, timeout: float) -> list[Outcome]:
        """Outcomes ready within ``timeout`` seconds (possibly none)."""
        waiting = [*self._active, *self._starting]
        ready, _ = ray.wait(waiting, num_returns=1, timeout=timeout)
        if ready and len(waiting) > 1:  # and everything else that is ready now: one pass, not one each
            ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
        if ready or self._active:
            self.last_activity = time.monotonic()
        outcomes = []
        for ref in ready:
            if ref in self._starting:
                self._probe_answered(ref)
            else:
                outcome = self._advance(ref)
                if outcome is not None:
                    outcomes.append(outcome)
        return outcomes

    def running(self) -> list[Any]:
        """Tickets of the trials on an actor now."""
        return [running.ticket for running in self._active.values()]

    def close(self) -> None:
        """Kill every actor (idle, starting, running)."""
        for actor in [*self._idle, *self._starting.values(), *(r.actor for r in self._active.values())]:
            kill_quietly(actor)

    # ---------------------------------------------------------------------------- internals
    def _new_actor(self) -> None:
        actor = self.actor_class.remote()
        self._starting[actor.node.remote()] = actor

    def _probe_answered(self, ref) -> None:
        actor = self._starting.pop(ref)
        try:
            self._nodes[actor] = ray.get(ref)
            self._idle.append(actor)
        except ray.exceptions.RayError as exc:  # died while starting
            self._start_failures += 1
            if not self._starting and not self._idle and not self._active:
                if self._start_failures > MAX_ACTOR_START_FAILURES:
                    raise RuntimeError(f"trajectory actors keep dying while starting: {exc}") from exc
                self._new_actor()

    def _advance(self, generator) -> Outcome | None:
        running = self._active[generator]
        try:
            records = ray.get(next(generator))
        except StopIteration:
            return self._done(generator, Finished(running.ticket))
        except ray.exceptions.RayTaskError as exc:
            cause = task_error(exc)
            if isinstance(cause, INFRASTRUCTURE_ERRORS):
                return self._lost(generator, cause, str(exc))
            return self._done(generator, Failed(running.ticket, f"{type(cause).__name__}: {cause}",
                                                remote_traceback(exc)))
        except INFRASTRUCTURE_ERRORS as exc:
            return self._lost(generator, exc, traceback.format_exc())
        return Streamed(running.ticket, records)

    def _done(self, generator, outcome: Outcome) -> Outcome:
        self._idle.append(self._active.pop(generator).actor)
        return outcome

    def _lost(self, generator, error: Exception, trace: str) -> Lost:
        running = self._active.pop(generator)
        if isinstance(error, ray.exceptions.ObjectLostError):  # lost with a node: put it again
            key = running.trial.embedding_key
            self.refs[key] = ray.put(self.data[key])
        kill_quietly(running.actor)
        self._nodes.pop(running.actor, None)
        self._new_actor()  # a replacement; it gets work once up
        return Lost(running.ticket, type(error).__name__, trace)
