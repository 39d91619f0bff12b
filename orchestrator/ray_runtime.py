"""Ray as the driver uses it: connecting, SIGTERM as Ctrl-C, and telling failures apart."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading

import ray

INFRASTRUCTURE_ERRORS = (
    ray.exceptions.RayActorError,  # ActorDiedError, ActorUnavailableError
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.ObjectLostError,  # OwnerDiedError, ObjectReconstructionFailedError, ...
    ray.exceptions.OutOfMemoryError,
    ray.exceptions.RaySystemError,
)
"""Failures of the machinery, not of the work: the work is resubmitted (from its checkpoint)."""


class ClusterConnectError(RuntimeError):
    """Ray cannot be reached the way it is configured; ``str()`` says why and the fix."""


def init_ray(num_cpus: int | None = None) -> None:
    """Connect to RAY_ADDRESS when set (a cluster), else start a fresh local Ray.

    ``address="local"`` matters: without it ``ray.init()`` silently joins whatever cluster a
    ``ray start`` on this machine last recorded in /tmp/ray. A Ray Client address and a token the
    cluster refuses raise ``ClusterConnectError`` with the fix (see ``orchestrator.cluster``).
    """
    from orchestrator import cluster

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}}
    if os.environ.get("RAY_ADDRESS"):
        if (problem := cluster.client_problem()) is not None:
            raise ClusterConnectError(problem)
        try:
            ray.init(log_to_driver=False, runtime_env=runtime_env)
        except Exception as exc:
            hint = cluster.auth_hint(exc)
            if hint is None:
                raise
            raise ClusterConnectError(f"cannot connect to {os.environ['RAY_ADDRESS']}: {hint}") from None
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env=runtime_env)


class _Interrupts:
    """SIGINT and SIGTERM as ``KeyboardInterrupt``, held back inside ``critical`` blocks."""

    depth = 0
    pending = False

    @classmethod
    def handler(cls, signum, frame):
        if cls.depth:
            cls.pending = True
            return
        raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_raises_keyboard_interrupt(enabled: bool = True):
    """SIGTERM (docker stop, a batch scheduler) stops the block like Ctrl-C does, and neither
    lands inside a ``critical`` block (it is raised when the block ends).

    Installed after ``ray.init``, which puts its own SIGTERM handler (abort) in place.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _Interrupts.handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _Interrupts.pending = False


@contextlib.contextmanager
def critical():
    """A step that must not be cut in two by Ctrl-C or SIGTERM (a run created but its id not
    yet known, say): an interrupt that arrives meanwhile is raised once the step is done."""
    _Interrupts.depth += 1
    try:
        yield
    finally:
        _Interrupts.depth -= 1
    if not _Interrupts.depth and _Interrupts.pending:
        _Interrupts.pending = False
        raise KeyboardInterrupt


def task_error(exc: ray.exceptions.RayTaskError) -> BaseException:
    """The exception a task or actor method raised (Ray wraps it)."""
    return exc.cause if exc.cause is not None else exc


def remote_traceback(exc: Exception, where: str = "the trajectory worker") -> str:
    """The worker's traceback as Ray reports it, without terminal colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    return f"Traceback (most recent call last, in {where}):\n{text}\n"


def kill_quietly(actor) -> None:
    """Kill an actor that may already be dead, or whose node is gone."""
    with contextlib.suppress(Exception):
        ray.kill(actor, no_restart=True)
