"""The Parquet embedding store: written by the embedding workers, read by the driver and actors.

Layout: ``<root>/<dataset>/<embedder>-<key[:16]>/<split>.parquet`` where ``key`` is a content
address (embedder identity and settings, dataset fingerprint). Columns: ``row_id`` (int64),
``label`` (int64), ``embedding`` (``fixed_size_list<float32|float16>[dim]``). Schema metadata
records the model, dim, normalisation, dataset fingerprint, albench version, the row count and a
sha256 of the column data, which ``read`` verifies, so a truncated or corrupted file is reported,
never silently used. Files are written under a temporary name and renamed: a reader never sees a
partial file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from workers.embedders.base import check_finite
from workers.files import atomic_write
from workers.hashing import content_hash

SPLITS = ("train", "test")
FORMAT_VERSION = "1"
_META_KEY = b"albench"


class StoreCorruptionError(RuntimeError):
    """A store file exists but fails verification (truncated, altered, wrong schema)."""


@dataclass(frozen=True)
class EmbeddingTable:
    """One split's embeddings as numpy arrays (built without per-row Python work)."""

    row_ids: np.ndarray
    labels: np.ndarray
    embeddings: np.ndarray
    metadata: dict

    def __len__(self) -> int:
        return int(self.row_ids.shape[0])


def embedding_key(embedder_identity: str, dataset_fingerprint: str) -> str:
    """Content address of one (embedder, dataset) pair."""
    # json.dumps' default separators (", ", ": "): part of every existing key, keep them.
    return content_hash(
        json.dumps({"embedder": embedder_identity, "dataset": dataset_fingerprint}, sort_keys=True)
    )


def _checksum(row_ids: np.ndarray, labels: np.ndarray, embeddings: np.ndarray) -> str:
    return content_hash(*(np.ascontiguousarray(a).data for a in (row_ids, labels, embeddings)))


class EmbeddingStore:
    """A directory of content-addressed embedding files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def directory(self, dataset: str, embedder: str, key: str) -> Path:
        return self.root / dataset / f"{embedder}-{key[:16]}"

    def path(self, dataset: str, embedder: str, key: str, split: str) -> Path:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.directory(dataset, embedder, key) / f"{split}.parquet"

    def has(self, dataset: str, embedder: str, key: str) -> bool:
        """True when every split's file exists (verification happens on read)."""
        return all(self.path(dataset, embedder, key, s).is_file() for s in SPLITS)

    def write(
        self,
        dataset: str,
        embedder: str,
        key: str,
        split: str,
        embeddings: np.ndarray,
        labels: np.ndarray,
        metadata: dict,
        dtype: str = "float32",
    ) -> Path:
        """Write one split atomically (``workers.files.atomic_write``); returns the final path.

        Non-finite vectors are refused (``EmbedderError`` naming the embedder and the fix)."""
        target = self.path(dataset, embedder, key, split)
        target.parent.mkdir(parents=True, exist_ok=True)
        values = np.ascontiguousarray(embeddings, dtype=np.dtype(dtype))
        check_finite(values, embedder, metadata.get("precision"))  # never store NaN/inf
        n, dim = values.shape
        row_ids = np.arange(n, dtype=np.int64)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if labels.shape != (n,):
            raise ValueError(f"labels shape {labels.shape} does not match {n} embeddings")
        meta = {
            **metadata,
            "format_version": FORMAT_VERSION,
            "key": key,
            "split": split,
            "dim": dim,
            "rows": n,
            "dtype": str(values.dtype),
            "checksum": _checksum(row_ids, labels, values),
        }
        column = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), dim)
        table = pa.table({"row_id": row_ids, "label": labels, "embedding": column})
        table = table.replace_schema_metadata({_META_KEY: json.dumps(meta, sort_keys=True)})
        with atomic_write(target) as temporary, pa.OSFile(str(temporary), "wb") as sink:
            pq.write_table(table, sink, compression="zstd")
        return target

    def read(self, dataset: str, embedder: str, key: str, split: str) -> EmbeddingTable:
        """Read and verify one split; raises StoreCorruptionError when verification fails."""
        path = self.path(dataset, embedder, key, split)
        try:
            table = pq.read_table(path)
            meta = json.loads(table.schema.metadata[_META_KEY])
        except FileNotFoundError:
            raise
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise StoreCorruptionError(f"{path}: unreadable Parquet ({exc})") from exc
        expected = pa.schema(
            [("row_id", pa.int64()), ("label", pa.int64()),
             ("embedding", pa.list_(pa.from_numpy_dtype(np.dtype(meta["dtype"])), meta["dim"]))]
        )
        if not table.schema.remove_metadata().equals(expected):
            raise StoreCorruptionError(f"{path}: schema {table.schema} is not the store's")
        if table.num_rows != meta["rows"] or meta["key"] != key:
            raise StoreCorruptionError(f"{path}: {table.num_rows} rows, metadata says {meta['rows']}")
        row_ids = table.column("row_id").to_numpy()
        labels = table.column("label").to_numpy()
        flat = table.column("embedding").combine_chunks().values.to_numpy(zero_copy_only=False)
        embeddings = flat.reshape(table.num_rows, meta["dim"])
        if _checksum(row_ids, labels, embeddings) != meta["checksum"]:
            raise StoreCorruptionError(f"{path}: checksum mismatch, the file was altered")
        return EmbeddingTable(row_ids, labels, embeddings, meta)

    def remove(self, dataset: str, embedder: str, key: str) -> None:
        """Delete every split of one entry (used to recompute a corrupted entry)."""
        for split in SPLITS:
            self.path(dataset, embedder, key, split).unlink(missing_ok=True)
