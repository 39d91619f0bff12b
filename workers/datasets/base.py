"""What every dataset source shares: the loaded ``TextDataset``, the error type, and the source
registry.

A source is a ``DatasetSource`` subclass: its pydantic spec (with ``type: Literal[...]``, the
discriminator of ``DatasetSpec.source``), its reader ``frames``, its path resolution
(``resolve_paths``: every ``Path`` field is relative to the config's folder) and its offline
check (``offline_problems``). A built-in is one module of this package (defining the class
registers it in ``SOURCES``; ``discover_sources`` imports every module of the package); another
package adds one through the entry-point group ``albench.dataset_sources``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strategies.registry import Registry, subclass_check, type_field
from workers.fs import absolute_path
from workers.specs import Spec


class DatasetError(ValueError):
    """A dataset spec that cannot be loaded; the message names the config field and the fix."""


@dataclass(frozen=True, eq=False)
class TextDataset:
    """A text classification task with a fixed split. Compare datasets by ``fingerprint``."""

    name: str
    train_texts: list[str]
    train_labels: np.ndarray  # int64, classes 0..C-1
    test_texts: list[str]
    test_labels: np.ndarray  # int64
    label_names: list[str]  # label_names[i]: original label (as str) of class i
    fingerprint: str  # sha256 over texts, labels, split membership and label names
    # Not in the fingerprint: what cleaning did to the source's splits ("train", "test"; a test
    # carved from train has no entry of its own). source_rows: rows each split had as read;
    # dropped: the rows cleaning removed, by reason (see DROP_REASONS), only where it removed any.
    source_rows: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def drop_notes(self) -> list[str]:
        """One line per split that lost rows in cleaning (none: empty), e.g. ``datasets[x]:
        train: 120 of 360 rows dropped (100 with an empty text, 20 without a label)``."""
        notes = []
        for split, counts in self.dropped.items():
            why = ", ".join(f"{n} {DROP_REASONS[reason]}" for reason, n in counts.items())
            notes.append(f"datasets[{self.name}]: {split}: {sum(counts.values())} of "
                         f"{self.source_rows[split]} rows dropped ({why})")
        return notes


DROP_REASONS = {"empty text": "with an empty text", "missing label": "without a label"}
"""Why cleaning drops a row (the keys of ``TextDataset.dropped``), as ``drop_notes`` words it. A
row with neither counts as an empty text."""


def one_line(exc: BaseException) -> str:
    """A library's error message on one line, control characters blanked (a reason inside a
    ``DatasetError``)."""
    printable = "".join(c if c.isprintable() else " " for c in str(exc))
    return " ".join(printable.split()).rstrip(".") or type(exc).__name__


Frames = tuple[pd.DataFrame, "pd.DataFrame | None"]
"""A source's (train, test) frames with columns text and label; test None: carve it from train."""


class DatasetSource(Spec):
    """Base of the source specs. A subclass with a ``type`` field registers itself in ``SOURCES``.

    A concrete source declares ``type: Literal["<name>"] = "<name>"`` and its fields (documented:
    they appear in ``albench schema``) and implements ``frames`` and ``held_out_fraction``.
    """

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if (name := type_field(cls)) is not None:  # not an intermediate base (TabularSource)
            SOURCES.add_builtin(name, cls)

    def resolve_paths(self, base: Path, field: str) -> DatasetSource:
        """This source with its local paths made absolute against ``base`` (the config's
        folder), ``~`` and ``$VAR`` expanded; ``field`` (``datasets[0].source``) starts errors.
        Default: every field holding a ``Path``."""
        update = {name: absolute_path(value, base, f"{field}.{name}")
                  for name, value in self if isinstance(value, Path)}
        return self.model_copy(update=update) if update else self

    def offline_problems(self, field: str) -> list[str]:
        """What ``albench validate --offline`` can tell is wrong without reading the data (none
        by default); each line starts with ``field`` (``datasets[0].source``)."""
        return []

    def frames(self, where: str, cache_dir: Path) -> Frames:
        """Read the source: (train, test or None) frames of raw text and label columns.

        ``where`` starts error messages (``datasets[<name>]``); ``cache_dir`` is albench's cache.
        """
        raise NotImplementedError

    def held_out_fraction(self) -> float:
        """Share of train held out for test when ``frames`` gives no test split."""
        raise NotImplementedError


SOURCES: Registry[type[DatasetSource]] = Registry("dataset source", "albench.dataset_sources",
                                                  subclass_check(DatasetSource, type_field))
"""Registered source specs by their ``type`` (filled as the modules of this package are imported)."""


def discover_sources() -> Registry[type[DatasetSource]]:
    """Import every module of ``workers.datasets`` (each source registers itself); ``SOURCES``."""
    package = importlib.import_module("workers.datasets")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"workers.datasets.{module.name}")
    return SOURCES


def default_cache_dir() -> Path:
    """``$ALBENCH_CACHE`` or ``~/.cache/albench``."""
    env = os.environ.get("ALBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "albench"
