"""Atomic file replacement: a reader sees the old file or the new one, never a partial one."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; when the block ends, make it ``target``.

    The block writes the temporary file completely and closes it (which flushes it). On leaving
    the block the file is fsynced, renamed over ``target`` and the folder fsynced, so the new
    content and its name survive a crash. If the block or any of those steps raises, the
    temporary file is removed and ``target`` is left as it was. The temporary name is
    ``.<name>.<random hex>.tmp`` (hidden, and matched by ``.*.tmp`` for clean-ups).
    """
    target = Path(target)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield temporary
        _fsync(temporary, os.O_RDWR)
        os.replace(temporary, target)
        if os.name == "posix":  # folders cannot be opened (nor fsynced) on Windows
            _fsync(target.parent, os.O_RDONLY)
    finally:
        temporary.unlink(missing_ok=True)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
