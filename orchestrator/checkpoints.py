"""Per-trial checkpoints (labelled rows in order + rng state), each one JSON object written whole.

The directory is a local folder or an object-store URI (``s3://bucket/prefix``; ``workers.fs``),
one code path for both: a checkpoint is written in one piece (a rename on a disk, one upload on
an object store) and carries the sha256 of its content, which ``load`` verifies: a reader uses
a checkpoint only when it is complete and unaltered, else the trial starts from scratch.

A local checkpoint directory also holds the grid's lock file: one driver at a time per
checkpoint directory (a second ``albench run`` of the same config would log the same trials
twice). The lock is an ``flock``, released by the kernel when the driver exits, even when it is
killed. An object store has no such lock; there the tracking store's lease (taken by every
driver, on any machine) is what refuses a second driver.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from workers.fs import ObjectPath, location, write_whole
from workers.hashing import content_hash
from workers.trajectory import Checkpoint

LOCK_NAME = ".albench.lock"


class GridLockedError(RuntimeError):
    """Another driver is running a grid with the same checkpoint directory."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written or removed (the message names ``store.checkpoints``)."""


@contextlib.contextmanager
def _writing(root, trial_key: str, what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise CheckpointWriteError(f"store.checkpoints: {what} the checkpoint of trial {trial_key} in "
                                   f"{root} failed ({' '.join(str(exc).split())[:300]})") from exc


class CheckpointStore:
    """One JSON file per trial key; the driver writes one after its metrics are in MLflow."""

    def __init__(self, root: str | Path | ObjectPath) -> None:
        self.root = location(root)

    @property
    def remote(self) -> bool:
        return isinstance(self.root, ObjectPath)

    def _path(self, trial_key: str) -> Path | ObjectPath:
        return self.root / f"{trial_key}.json"

    def save(self, trial_key: str, checkpoint: Checkpoint) -> None:
        """Write whole (``workers.fs.write_whole``): a reader sees the old one or the new one."""
        body = asdict(checkpoint)
        body["checksum"] = _checksum(body)
        with _writing(self.root, trial_key, "saving"):
            write_whole(self._path(trial_key), json.dumps(body).encode())

    def load(self, trial_key: str) -> Checkpoint | None:
        """The trial's checkpoint, or None when there is none, it is unreadable or it does not
        verify (its checksum; checkpoints written before checksums are taken as they are)."""
        try:
            data = json.loads(self._path(trial_key).read_text())
            checksum = data.pop("checksum", None)
            if checksum is not None and checksum != _checksum(data):
                return None
            return Checkpoint(cycle=int(data["cycle"]), labelled_order=list(data["labelled_order"]),
                              rng_state=dict(data["rng_state"]))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, AttributeError,
                KeyError, TypeError, ValueError):
            return None

    def remove(self, trial_key: str) -> None:
        with _writing(self.root, trial_key, "removing"):
            self._path(trial_key).unlink(missing_ok=True)

    def trial_keys(self) -> list[str]:
        """Trial keys that have a checkpoint (trials caught mid-trajectory)."""
        if not self.remote and not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json"))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the grid lock for the duration; GridLockedError when another driver has it.

        On an object store there is nothing to hold here (the tracking lease refuses a second
        driver)."""
        if self.remote:
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_NAME, "a+") as handle:  # closing releases the flock
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise GridLockedError(
                    f"another albench run is running this grid (it holds {self.root / LOCK_NAME}); "
                    "wait for it to end, or stop it"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield

    def locked(self) -> bool:
        """True while a driver holds the grid lock (so RUNNING runs are really running); always
        False on an object store (the tracking lease tells)."""
        if self.remote:
            return False
        path = self.root / LOCK_NAME
        if not path.exists():
            return False
        try:
            handle = open(path)  # noqa: SIM115 - read only (flock needs no write access): a
        except OSError:          # read-only grid can be asked; closed below
            return False  # cannot be read: the tracking store's lease tells
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False


def _checksum(body: dict) -> str:
    return content_hash(json.dumps(body, sort_keys=True, separators=(",", ":")))
