"""``DaemonPool``: a thread pool whose threads never hold the process at exit.

A ``ThreadPoolExecutor``'s threads are joined when Python exits, so one stuck in a request to a
tracking store that is gone (MLflow's client retries for minutes) keeps a stopped driver alive
that long. The driver's background work (its writers, its figure thread) runs here instead: a
driver that gave up on its tracking store exits at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future


class DaemonPool:
    """``threads`` daemon threads running submitted callables in order of submission."""

    def __init__(self, threads: int, name: str) -> None:
        self._tasks: queue.SimpleQueue[tuple[Future, Callable, tuple] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, function: Callable, *arguments) -> Future:
        """Run ``function(*arguments)`` on a thread of the pool; its future."""
        future: Future = Future()
        self._tasks.put((future, function, arguments))
        return future

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            future, function, arguments = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*arguments))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads once the work submitted before is done (``wait``: wait for that)."""
        for _ in self._threads:
            self._tasks.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
