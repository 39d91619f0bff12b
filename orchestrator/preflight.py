"""What can be checked before any work starts, beyond the config's schema.

``problems`` are refusals (``albench validate`` lists them all at once, ``albench run`` refuses
to start); ``warnings`` are printed and recorded, and the run goes on.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

import numpy as np

from orchestrator import cluster
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
    """Refusals about where results go (the tracking store, the store folders) and about the
    cluster (a Ray Client address; results inside a Ray job's temporary working directory)."""
    found = [*cluster.problems(config), tracking_problem(config),
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


def protocol_warnings(config: ExperimentConfig, datasets: dict[str, TextDataset]) -> dict[str, list[str]]:
    """Per dataset: what makes its grid misleading, with the numbers. Classes that exist only in
    the test split (no trial can label them: they cap accuracy and macro-F1 for every strategy
    alike), and an initial pool smaller than the number of classes (the first learner cannot
    have seen every class)."""
    found: dict[str, list[str]] = {}
    for name, data in datasets.items():
        notes = []
        only_test = np.setdiff1d(np.unique(data.test_labels), np.unique(data.train_labels))
        if only_test.size:
            rows = int(np.isin(data.test_labels, only_test).sum())
            names = ", ".join(repr(data.label_names[c]) for c in only_test[:5])
            notes.append(f"datasets[{name}]: {only_test.size} classes ({names}) appear only in the test "
                         f"split ({rows} of {data.test_labels.size} test rows): no trial can label them")
        size = config.protocol.initial_pool_size
        if size < data.n_classes:
            notes.append(f"datasets[{name}]: protocol.initial_pool_size {size} is smaller than its "
                         f"{data.n_classes} classes: the first learner cannot have seen every class")
        if notes:
            found[name] = notes
    return found


def _cuda_here() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
