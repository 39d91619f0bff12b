"""What can be checked before any work starts, beyond the config's schema.

``problems`` are refusals (``albench validate`` lists them all at once, ``albench run`` refuses
to start); ``warnings`` are printed and recorded, and the run goes on.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

from orchestrator.config import ExperimentConfig
from workers.datasets import TextDataset


def folder_problem(field: str, path: Path) -> str | None:
    """Why ``path`` cannot be (or become) a writable folder, or None."""
    where = Path(path).absolute()
    if where.exists() and not where.is_dir():
        return f"{field}: {where} is a file, not a folder; fix: give a folder path (or move the file)"
    existing = next(p for p in (where, *where.parents) if p.exists())
    if not existing.is_dir():
        return f"{field}: {where} would be under {existing}, which is a file; fix: choose another folder"
    try:  # root passes every permission check: only a real write tells
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"{field}: {existing} is not writable ({exc.strerror}); fix: choose a writable folder"
    return None


def tracking_problem(config: ExperimentConfig) -> str | None:
    """Why the tracking URI cannot work (the backend's own quick check), or None."""
    module = importlib.import_module(f"orchestrator.tracking.{config.tracking.backend}_backend")
    check = getattr(module, "check_uri", None)
    if check is None:
        return None
    try:
        check(config.tracking.uri)
    except ValueError as exc:
        return str(exc)
    return None


def problems(config: ExperimentConfig) -> list[str]:
    """Refusals about where results go: the tracking store and the store folders."""
    found = [tracking_problem(config),
             folder_problem("store.path", config.store.path),
             folder_problem("store.checkpoints", config.store.checkpoints)]
    return [p for p in found if p is not None]


def duplicate_problems(config: ExperimentConfig, datasets: dict[str, TextDataset],
                       identities: dict[str, str]) -> list[str]:
    """Two entries that are one thing under two names would give one trial key two names
    (two FINISHED runs per key, one cell's numbers under the other's name): refused."""
    found = []
    for field, entries, what, same in (
        ("datasets", config.datasets, "the same rows, split and labels", datasets),
        ("embedders", config.embedders, "the same model and settings", identities),
    ):
        first: dict[str, tuple[int, str]] = {}
        for index, entry in enumerate(entries):
            if entry.name not in same:
                continue
            key = same[entry.name].fingerprint if field == "datasets" else same[entry.name]
            if key in first:
                other, name = first[key]
                found.append(f"{field}[{index}] ({entry.name}): {what} as {field}[{other}] ({name}); "
                             "fix: remove one of the two entries")
            else:
                first[key] = (index, entry.name)
    return found


def warnings(config: ExperimentConfig, datasets: dict[str, TextDataset]) -> list[str]:
    """Things albench works around, said out loud: rows dropped, a GPU asked for but absent."""
    found = [note for data in datasets.values() for note in data.drop_notes()]
    if config.resources.strategy_device == "cuda" and not _cuda_here():
        found.append("resources.strategy_device: cuda, but this machine sees no CUDA GPU; the "
                     "strategy kernels run on the CPU unless the trajectory workers have one")
    return found


def _cuda_here() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
