"""One driver per grid, enforced where the results live: a lease in the MLflow tracking store.

A lease is an MLflow experiment named ``<experiment> (albench lease)``. MLflow refuses a second
experiment of the same name (a unique key in its database, the same answer over a server), so
of two drivers starting at the same moment exactly one creates it and wins; no shared disk is
needed. The holder (host, process id and its start time) and a heartbeat are the lease's tags;
the holder renews the heartbeat every ``HEARTBEAT_SECONDS``. A lease whose heartbeat is older
than ``EXPIRY_SECONDS``, or whose holder process is gone from this host, is expired: the next
driver renames it away (which frees the name) and creates its own, and a holder that finds its
lease renamed has lost it. Releasing renames the lease away too and deletes it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from mlflow.exceptions import MlflowException

from orchestrator.tracking.base import GridHeldError

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 10.0
EXPIRY_SECONDS = 60.0
HOLDER_TAG = "albench.lease.holder"
HEARTBEAT_TAG = "albench.lease.heartbeat"


class LeaseHeldError(GridHeldError):
    """Another live driver holds the grid's lease."""


def lease_name(experiment: str) -> str:
    return f"{experiment} (albench lease)"


def this_process() -> str:
    """host:pid:start-time of this process (the start time tells a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def holder_gone(holder: str) -> bool:
    """True when ``holder`` is a process of this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return _start_time(int(pid)) != started


def live_holder(client, experiment: str) -> str | None:
    """Who holds the lease of ``experiment`` now, when that lease has not expired."""
    current = client.get_experiment_by_name(lease_name(experiment))
    if current is None:
        return None
    holder = current.tags.get(HOLDER_TAG, "?")
    beat = float(current.tags.get(HEARTBEAT_TAG, "0") or 0)
    if time.time() - beat > EXPIRY_SECONDS or holder_gone(holder):
        return None
    return holder


class MlflowLease:
    """The grid's lease, held by this driver between ``acquire`` and ``release``."""

    def __init__(self, client, experiment: str) -> None:
        self.client = client
        self.name = lease_name(experiment)
        self.holder = this_process()
        self.experiment_id: str | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lease (taking over an expired one) or raise ``LeaseHeldError``."""
        for _ in range(3):
            try:
                self.experiment_id = self.client.create_experiment(
                    self.name, tags={HOLDER_TAG: self.holder, HEARTBEAT_TAG: str(time.time())})
            except MlflowException:
                current = self.client.get_experiment_by_name(self.name)
                if current is None:
                    continue  # released a moment ago: try again
                holder = current.tags.get(HOLDER_TAG, "?")
                age = time.time() - float(current.tags.get(HEARTBEAT_TAG, "0") or 0)
                if age <= EXPIRY_SECONDS and not holder_gone(holder):
                    raise LeaseHeldError(
                        f"another albench run ({holder}, last seen {age:.0f} s ago) is running this grid "
                        f"(the lease {self.name!r} in the tracking store); wait for it to end, or stop "
                        f"it; a driver that died is taken over after {EXPIRY_SECONDS:.0f} s") from None
                self._retire(current.experiment_id, "expired")
                continue
            self._thread = threading.Thread(target=self._beat, name="albench-lease", daemon=True)
            self._thread.start()
            return
        raise LeaseHeldError(f"could not take the lease {self.name!r}: other drivers keep taking it")

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                current = self.client.get_experiment(self.experiment_id)
                if current.name != self.name or current.tags.get(HOLDER_TAG) != self.holder:
                    self.lost.set()
                    return
                self.client.set_experiment_tag(self.experiment_id, HEARTBEAT_TAG, str(time.time()))
            except MlflowException as exc:  # a passing tracking-store error: the next beat tries again
                log.warning("albench lease heartbeat failed (%s); trying again", exc)

    def abandon(self) -> None:
        """Stop renewing without releasing (the tracking store does not answer): the lease
        expires after ``EXPIRY_SECONDS``, or at once for a driver on this host once we exit."""
        self._stop.set()
        self.lost.set()  # release() then leaves the store alone

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HEARTBEAT_SECONDS)
        if self.experiment_id is not None and not self.lost.is_set():
            self._retire(self.experiment_id, "released")
        self.experiment_id = None

    def _retire(self, experiment_id: str, why: str) -> None:
        """Free the name: rename the lease away, then delete it (MLflow keeps deleted names)."""
        try:
            self.client.rename_experiment(experiment_id, f"{self.name} {why} {uuid.uuid4().hex[:12]}")
            self.client.delete_experiment(experiment_id)
        except MlflowException:
            pass  # another driver retired it first
