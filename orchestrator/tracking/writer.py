"""The driver's writes, off its loop: one writer thread per connection the backend takes.

The driver hands over each flush's writes (``RunWrite``, one per run) and goes back to its
actors. With a backend of concurrency 1 (a SQLite file) one thread applies each flush whole,
in order, in one transaction where the backend can; with more (an MLflow server) a bounded
pool applies the runs of a flush side by side, and the writes of one run strictly one after
another. A write runs only after the earlier writes of its run were recorded: when one fails,
every later write of that run is dropped (its checkpoint is never saved past a gap), and the
driver sees the error at its next ``check``. A driver killed at any moment leaves checkpoints
that cover only what the tracker holds, which is what resuming relies on.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from orchestrator.checkpoints import CheckpointWriteError
from orchestrator.threads import DaemonPool
from orchestrator.tracking.base import RunWrite, Tracker

MAX_PENDING_FLUSHES = 4
"""Flushes queued before ``submit`` waits for the writer (bounded memory, bounded lag)."""
POLL_SECONDS = 0.5
"""How often a wait for the writer looks at the outage clock (and lets a signal in)."""


class TrackingWriteError(RuntimeError):
    """The tracker refused or lost a write (the grid stops; rerunning resumes it)."""


class TrackingOutage(TrackingWriteError):
    """The tracker took no write for longer than the outage bound (the grid stops)."""


class TrackingWriter:
    """Applies ``RunWrite`` batches in the background, in order per run.

    ``outage_seconds`` (``tracking.outage_seconds``): when writes are waiting and none has been
    recorded for that long, ``check`` (and every wait for the writer) raises ``TrackingOutage``
    and the writer gives up: nothing queued is applied any more, and a tracker with ``abort``
    stops retrying at once. None: no bound (the backend's own retries decide)."""

    def __init__(self, tracker: Tracker, threads: int | None = None,
                 outage_seconds: float | None = None) -> None:
        self.tracker = tracker
        self.threads = max(1, threads or getattr(tracker, "concurrency", 1))
        self.outage_seconds = outage_seconds
        self._pool = DaemonPool(self.threads, "albench-writer")
        self._lock = threading.Lock()
        self._tails: dict[int, Future] = {}  # id(ref) -> the last write of that run
        self._pending: deque[Future] = deque()
        self._error: BaseException | None = None
        self._progress = time.monotonic()
        """When a write was last recorded, or writes started waiting after none were."""
        self.given_up: TrackingOutage | None = None

    def submit(self, writes: list[RunWrite]) -> None:
        """Queue one flush's writes (returns at once unless the writer is far behind)."""
        self.check()
        if not writes:
            return
        while len(self._pending) >= MAX_PENDING_FLUSHES * self.threads:
            self._wait(self._pending[0])  # the oldest
            self._forget_done()
        if all(f.done() for f in self._pending):
            self._progress = time.monotonic()  # the outage clock starts with waiting writes
        if self.threads == 1:  # one flush, one transaction
            self._chain(None, writes)
        else:
            for write in writes:
                self._chain(id(write.ref), [write])
        self._forget_done()

    def check(self) -> None:
        """Raise the first write error, if any (``TrackingOutage`` once the bound is passed)."""
        self._check_outage()
        if self.given_up is not None:
            raise self.given_up
        if self._error is not None:
            error = self._error
            if isinstance(error, CheckpointWriteError):  # the checkpoint after a recorded write
                raise TrackingWriteError(str(error)) from error
            raise TrackingWriteError(f"the tracking store did not take a write: {error}") from error

    @property
    def failed(self) -> bool:
        """A write failed, or the writer gave up: the tracking store is not to be relied on."""
        return self._error is not None or self.given_up is not None

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted was applied (or failed); then ``check``. With
        ``timeout``: False when writes were still waiting after that long (left to ``close``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._pending:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._wait(self._pending[0], deadline)
            if self._pending and self._pending[0].done():
                self._pending.popleft()
        self.check()
        return True

    def close(self, timeout: float | None = None) -> None:
        """Apply what is queued (waiting at most ``timeout``), then stop the threads (errors are
        left to ``check``); after a failure, past the outage bound or the timeout, give up on
        what is still queued instead (its checkpoints are not saved: a rerun resumes before it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._pending and not self.failed:
            try:
                self._wait(self._pending[0], deadline)
            except TrackingWriteError:
                break
            if not self._pending[0].done():  # the timeout
                self._give_up(TrackingOutage(f"the tracking store took no write within {timeout:g} s"))
                break
            self._pending.popleft()
        if self.failed:
            self._give_up(self.given_up or TrackingWriteError(f"gave up after: {self._error}"))
        self._pool.shutdown(wait=not self.failed)

    # ---------------------------------------------------------------------------- internals
    def _wait(self, future: Future, deadline: float | None = None) -> None:
        """Wait for ``future``, looking at the outage clock (and letting signals in) meanwhile."""
        while not future.done():
            if deadline is not None and time.monotonic() >= deadline:
                return
            try:
                future.exception(timeout=POLL_SECONDS)
            except FutureTimeout:
                self._check_outage()
                if self.given_up is not None:
                    raise self.given_up from None

    def _check_outage(self) -> None:
        if self.given_up is not None or self.outage_seconds is None:
            return
        waiting = any(not f.done() for f in self._pending)
        silent = time.monotonic() - self._progress
        if waiting and silent > self.outage_seconds:
            uri = getattr(self.tracker, "shown_uri", None) or "the tracking store"
            self._give_up(TrackingOutage(
                f"{uri} has taken no write for {silent:.0f} s (tracking.outage_seconds: "
                f"{self.outage_seconds:g}): it is down or unreachable, so this run stops"))

    def _give_up(self, why: TrackingWriteError) -> None:
        with self._lock:
            if self.given_up is None:
                self.given_up = why if isinstance(why, TrackingOutage) else TrackingOutage(str(why))
        abort = getattr(self.tracker, "abort", None)
        if abort is not None:
            abort()

    def _chain(self, key: int | None, writes: list[RunWrite]) -> None:
        done: Future = Future()
        with self._lock:
            previous = self._tails.get(key) if key is not None else (self._pending[-1] if self._pending else None)
            if key is not None:
                self._tails[key] = done

        def run(_: Future | None = None) -> None:
            try:
                if previous is not None and previous.exception() is not None:
                    raise previous.exception()  # never write past a gap of the same run
                if self.given_up is not None:
                    raise self.given_up  # the store is gone: nothing queued is tried
                self.tracker.apply(writes)
                self._progress = time.monotonic()
                done.set_result(None)
            except BaseException as exc:  # noqa: BLE001 - kept for check()
                with self._lock:
                    if self._error is None and exc is not self.given_up:
                        self._error = exc
                done.set_exception(exc)

        self._pending.append(done)
        if previous is None or previous.done():
            self._pool.submit(run)
        else:
            previous.add_done_callback(lambda _: self._pool.submit(run))

    def _forget_done(self) -> None:
        while self._pending and self._pending[0].done():
            self._pending.popleft()
        with self._lock:
            for key in [k for k, f in self._tails.items() if f.done() and f.exception() is None]:
                del self._tails[key]
