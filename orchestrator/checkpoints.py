"""Per-trial checkpoints (labelled rows in order + rng state), written atomically as JSON.

The checkpoint directory also holds the grid's lock file: one driver at a time per checkpoint
directory (a second ``albench run`` of the same config would log the same trials twice). The
lock is an ``flock``, released by the kernel when the driver exits, even when it is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from workers.files import atomic_write
from workers.trajectory import Checkpoint

LOCK_NAME = ".albench.lock"


class GridLockedError(RuntimeError):
    """Another driver is running a grid with the same checkpoint directory."""


class CheckpointStore:
    """One JSON file per trial key; the driver writes one after its metrics are in MLflow."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, trial_key: str) -> Path:
        return self.root / f"{trial_key}.json"

    def save(self, trial_key: str, checkpoint: Checkpoint) -> None:
        """Write atomically (``workers.files.atomic_write``): a reader sees the old or the new one."""
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_write(self._path(trial_key)) as temporary:
            temporary.write_text(json.dumps(asdict(checkpoint)))

    def load(self, trial_key: str) -> Checkpoint | None:
        """The trial's checkpoint, or None when there is none or it is unreadable."""
        try:
            data = json.loads(self._path(trial_key).read_text())
            return Checkpoint(cycle=int(data["cycle"]), labelled_order=list(data["labelled_order"]),
                              rng_state=dict(data["rng_state"]))
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def remove(self, trial_key: str) -> None:
        self._path(trial_key).unlink(missing_ok=True)

    def trial_keys(self) -> list[str]:
        """Trial keys that have a checkpoint (trials caught mid-trajectory)."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json"))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the grid lock for the duration; GridLockedError when another driver has it."""
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
        """True while a driver holds the grid lock (so RUNNING runs are really running)."""
        path = self.root / LOCK_NAME
        if not path.exists():
            return False
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False
