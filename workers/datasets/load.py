"""``load_dataset``: a source's frames through cleaning, splitting, subsampling and label coding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from workers.datasets.base import DatasetError, TextDataset, default_cache_dir
from workers.datasets.tabular import blank
from workers.hashing import content_hash

if TYPE_CHECKING:
    from workers.datasets.spec import DatasetSpec, Subsample


def load_dataset(spec: DatasetSpec, cache_dir: Path | None = None) -> TextDataset:
    """Read the source, drop empty texts, split, subsample and map labels to 0..C-1."""
    src, where = spec.source, f"datasets[{spec.name}]"
    train, test = src.frames(where, Path(cache_dir or default_cache_dir()))

    if not spec.float_labels:
        for frame in (train, test):
            _refuse_continuous(frame, spec, where)
    rows: dict[str, int] = {}
    dropped: dict[str, dict[str, int]] = {}
    train = _clean(train, "train", rows, dropped)
    if len(train) == 0:
        raise DatasetError(f"{where}: the train split has no rows with a text and a label")
    if test is None:
        train, test = _split(train, src.held_out_fraction(), spec.split_seed, where)
    else:
        test = _clean(test, "test", rows, dropped)
        if len(test) == 0:
            raise DatasetError(f"{where}: the test split has no rows with a text and a label")
    if spec.subsample is not None:
        train, test = _subsample(train, test, spec.subsample, where)

    labels = np.concatenate([train["label"].to_numpy(str), test["label"].to_numpy(str)])
    names, codes = np.unique(labels, return_inverse=True)
    train_codes, test_codes = codes[: len(train)], codes[len(train):]
    pool_classes = np.unique(train_codes)
    if len(pool_classes) < 2:
        only = f" ({str(names[pool_classes[0]])!r})" if len(pool_classes) else ""
        raise DatasetError(
            f"{where}: the pool has a single class{only}; a classification benchmark needs at "
            "least 2 classes — check label_column or the subsample"
        )
    return _make(spec.name, train["text"].tolist(), train_codes, test["text"].tolist(),
                 test_codes, names.tolist(), rows, dropped)


CONTINUOUS_DISTINCT = 20
"""More distinct non-integer numbers than this in a label column look like a score, not classes."""


def _refuse_continuous(frame: pd.DataFrame | None, spec: DatasetSpec, where: str) -> None:
    """Refuse a label column of many distinct non-integer numbers (a regression target or a
    score: each value would become a class of its own) unless ``float_labels`` says so."""
    if frame is None:
        return
    distinct = pd.Series(frame["label"].dropna().unique())
    if len(distinct) <= CONTINUOUS_DISTINCT:
        return
    if not pd.api.types.is_float_dtype(distinct):  # numbers written as text (a CSV column of both)
        if pd.api.types.is_bool_dtype(distinct):
            return
        distinct = pd.to_numeric(distinct, errors="coerce")
        if distinct.isna().any():
            return  # words among them: class names
    if (distinct % 1 != 0).any():
        column = getattr(spec.source, "label_column", "label")
        examples = ", ".join(f"{v:g}" for v in sorted(distinct)[:3])
        raise DatasetError(
            f"{where}.source.label_column: column {column!r} holds {len(distinct)} distinct non-integer "
            f"numbers ({examples}, ...): a continuous score, not classes (each value would be a class "
            f"of its own); fix: name the class column in label_column, bin the scores into classes, "
            f"or set {where}.float_labels: true to make each value a class")


def _make(name, train_texts, train_codes, test_texts, test_codes, label_names, source_rows,
          dropped) -> TextDataset:
    train_labels = np.ascontiguousarray(train_codes, dtype=np.int64)
    test_labels = np.ascontiguousarray(test_codes, dtype=np.int64)
    payload = json.dumps(
        {"label_names": label_names,
         "train": [train_texts, train_labels.tolist()],
         "test": [test_texts, test_labels.tolist()]},
        ensure_ascii=False, separators=(",", ":"),
    )
    fingerprint = content_hash(payload)
    for arr in (train_labels, test_labels):
        arr.setflags(write=False)
    return TextDataset(name, train_texts, train_labels, test_texts, test_labels, label_names,
                       fingerprint, source_rows, dropped)


def _label_strings(labels: pd.Series) -> pd.Series:
    """Labels as strings; integral floats (a NaN-holed int column) print as ints."""
    if pd.api.types.is_float_dtype(labels) and len(labels) and (labels % 1 == 0).all():
        labels = labels.astype(np.int64)
    return labels.astype(str)


def _clean(frame: pd.DataFrame, split: str, rows: dict, dropped: dict) -> pd.DataFrame:
    """Keep rows with a non-blank text and a label; text and label become str.

    Records the split's rows in ``rows[split]`` and, when any go, the dropped rows by reason in
    ``dropped[split]`` (``TextDataset.source_rows`` and ``dropped``).
    """
    no_text, has_label = blank(frame["text"]), frame["label"].notna()
    counts = {"empty text": int(no_text.sum()), "missing label": int((~no_text & ~has_label).sum())}
    rows[split] = len(frame)
    if any(counts.values()):
        dropped[split] = {reason: n for reason, n in counts.items() if n}
    frame = frame[~no_text & has_label]
    return pd.DataFrame({"text": frame["text"].astype(str).to_numpy(object),
                         "label": _label_strings(frame["label"]).to_numpy(object)})


def _split(frame: pd.DataFrame, fraction: float, seed: int, where: str):
    n = len(frame)
    if n < 2:
        raise DatasetError(f"{where}: {n} row(s) cannot be split into train and test; add rows")
    n_test = min(max(round(n * fraction), 1), n - 1)  # n: int, fraction: float -> int
    perm = np.random.default_rng(seed).permutation(n)
    test_idx, train_idx = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    return (frame.iloc[train_idx].reset_index(drop=True),
            frame.iloc[test_idx].reset_index(drop=True))


def _subsample(train: pd.DataFrame, test: pd.DataFrame, sub: Subsample, where: str):
    rng = np.random.default_rng(sub.seed)
    out = []
    for split, frame, size in (("train", train, sub.train), ("test", test, sub.test)):
        if size is not None:
            if size > len(frame):
                raise DatasetError(
                    f"{where}.subsample.{split}: asks for {size} rows but the {split} split has "
                    f"{len(frame)} (after dropping empty texts); lower it or remove it"
                )
            idx = np.sort(rng.choice(len(frame), size=size, replace=False))
            frame = frame.iloc[idx].reset_index(drop=True)
        out.append(frame)
    return out[0], out[1]
