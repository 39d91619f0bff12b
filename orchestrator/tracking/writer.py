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
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from orchestrator.tracking.base import RunWrite, Tracker

MAX_PENDING_FLUSHES = 4
"""Flushes queued before ``submit`` waits for the writer (bounded memory, bounded lag)."""


class TrackingWriteError(RuntimeError):
    """The tracker refused or lost a write (the grid stops; rerunning resumes it)."""


class TrackingWriter:
    """Applies ``RunWrite`` batches in the background, in order per run."""

    def __init__(self, tracker: Tracker, threads: int | None = None) -> None:
        self.tracker = tracker
        self.threads = max(1, threads or getattr(tracker, "concurrency", 1))
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="albench-writer")
        self._lock = threading.Lock()
        self._tails: dict[int, Future] = {}  # id(ref) -> the last write of that run
        self._pending: deque[Future] = deque()
        self._error: BaseException | None = None

    def submit(self, writes: list[RunWrite]) -> None:
        """Queue one flush's writes (returns at once unless the writer is far behind)."""
        self.check()
        if not writes:
            return
        while len(self._pending) >= MAX_PENDING_FLUSHES * self.threads:
            self._pending[0].exception()  # wait for the oldest
            self._forget_done()
        if self.threads == 1:  # one flush, one transaction
            self._chain(None, writes)
        else:
            for write in writes:
                self._chain(id(write.ref), [write])
        self._forget_done()

    def check(self) -> None:
        """Raise the first write error, if any."""
        if self._error is not None:
            error = self._error
            raise TrackingWriteError(f"the tracking store did not take a write: {error}") from error

    def drain(self) -> None:
        """Wait until everything submitted was applied (or failed); then ``check``."""
        while self._pending:
            self._pending.popleft().exception()
        self.check()

    def close(self) -> None:
        """Apply what is queued, then stop the threads (errors are left to ``check``)."""
        while self._pending:
            self._pending.popleft().exception()
        self._pool.shutdown(wait=True)

    # ---------------------------------------------------------------------------- internals
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
                self.tracker.apply(writes)
                done.set_result(None)
            except BaseException as exc:  # noqa: BLE001 - kept for check()
                with self._lock:
                    if self._error is None:
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
