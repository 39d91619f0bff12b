"""The Parquet embedding store: written by the embedding workers, read by the driver and actors.

Layout: ``<root>/<dataset>/<embedder>-<key[:16]>/`` holding either ``shards/<split>-NNNNN.parquet``
and a ``manifest.json`` written last (what the embedding stage writes; the entry exists only
once the manifest does), or one ``<split>.parquet`` per split (``write``), where ``key`` is a content
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
        if self.manifest_path(dataset, embedder, key).is_file():
            return True
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
        n = len(embeddings)
        return self._write_file(target, embedder, key, split, embeddings, labels,
                                np.arange(n, dtype=np.int64), metadata, dtype)

    def _write_file(self, target: Path, embedder: str, key: str, split: str, embeddings: np.ndarray,
                    labels: np.ndarray, row_ids: np.ndarray, metadata: dict, dtype: str) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        values = np.ascontiguousarray(embeddings, dtype=np.dtype(dtype))
        check_finite(values, embedder, metadata.get("precision"))  # never store NaN/inf
        n, dim = values.shape
        row_ids = np.ascontiguousarray(row_ids, dtype=np.int64)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if labels.shape != (n,) or row_ids.shape != (n,):
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

    # ------------------------------------------------------------------------- sharded entries
    # ``<entry>/shards/<split>-<index:05d>.parquet`` (rows [index*shard_rows, ...) of the split,
    # row_id = the row's index in the split), then ``<entry>/manifest.json``, written last: the
    # entry exists (``has``) only once the manifest does. A shard is verified right after its
    # write; a resumed job keeps the shards that verify and writes from the first missing one.

    def shard_path(self, dataset: str, embedder: str, key: str, split: str, index: int) -> Path:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.directory(dataset, embedder, key) / "shards" / f"{split}-{index:05d}.parquet"

    def manifest_path(self, dataset: str, embedder: str, key: str) -> Path:
        return self.directory(dataset, embedder, key) / "manifest.json"

    def write_shard(self, dataset: str, embedder: str, key: str, split: str, index: int,
                    start: int, embeddings: np.ndarray, labels: np.ndarray, metadata: dict,
                    dtype: str = "float32") -> Path:
        """Write one shard atomically and verify it by reading it back."""
        path = self.shard_path(dataset, embedder, key, split, index)
        rows = np.arange(start, start + len(embeddings), dtype=np.int64)
        self._write_file(path, embedder, key, split, embeddings, labels, rows,
                         {**metadata, "shard": index}, dtype)
        self._read_file(path, key)  # raises StoreCorruptionError when it does not verify
        return path

    def shard_ok(self, dataset: str, embedder: str, key: str, split: str, index: int,
                 rows: int) -> bool:
        """True when the shard exists, verifies and holds ``rows`` rows."""
        path = self.shard_path(dataset, embedder, key, split, index)
        if not path.is_file():
            return False
        try:
            return len(self._read_file(path, key)) == rows
        except StoreCorruptionError:
            return False

    def write_manifest(self, dataset: str, embedder: str, key: str, shards: dict[str, list[int]],
                       metadata: dict) -> Path:
        """Make a sharded entry visible: ``shards`` maps each split to its shards' row counts."""
        if set(shards) != set(SPLITS):
            raise ValueError(f"a manifest lists every split {SPLITS}")
        for split, counts in shards.items():
            for index, rows in enumerate(counts):
                if not self.shard_ok(dataset, embedder, key, split, index, rows):
                    raise StoreCorruptionError(
                        f"{self.shard_path(dataset, embedder, key, split, index)}: missing or "
                        "damaged; the entry is not complete")
        target = self.manifest_path(dataset, embedder, key)
        body = {**metadata, "format_version": FORMAT_VERSION, "key": key, "shards": shards}
        with atomic_write(target) as temporary:
            temporary.write_text(json.dumps(body, sort_keys=True))
        return target

    def _read_manifest(self, dataset: str, embedder: str, key: str) -> dict | None:
        path = self.manifest_path(dataset, embedder, key)
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise StoreCorruptionError(f"{path}: unreadable manifest ({exc})") from exc
        if manifest.get("key") != key:
            raise StoreCorruptionError(f"{path}: the manifest is another entry's")
        return manifest

    def read(self, dataset: str, embedder: str, key: str, split: str) -> EmbeddingTable:
        """Read and verify one split; raises StoreCorruptionError when verification fails."""
        manifest = self._read_manifest(dataset, embedder, key)
        if manifest is None:
            return self._read_file(self.path(dataset, embedder, key, split), key)
        parts = []
        for index, rows in enumerate(manifest["shards"][split]):
            path = self.shard_path(dataset, embedder, key, split, index)
            if not path.is_file():
                raise StoreCorruptionError(f"{path}: a shard the manifest lists is missing")
            part = self._read_file(path, key)
            if len(part) != rows:
                raise StoreCorruptionError(f"{path}: {len(part)} rows, the manifest says {rows}")
            parts.append(part)
        meta = {k: v for k, v in manifest.items() if k != "shards"}
        if not parts:
            raise StoreCorruptionError(f"{self.manifest_path(dataset, embedder, key)}: no shards")
        meta.update(dim=parts[0].metadata["dim"], dtype=parts[0].metadata["dtype"], split=split,
                    rows=sum(len(p) for p in parts))
        return EmbeddingTable(np.concatenate([p.row_ids for p in parts]),
                              np.concatenate([p.labels for p in parts]),
                              np.concatenate([p.embeddings for p in parts]), meta)

    def _read_file(self, path: Path, key: str) -> EmbeddingTable:
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
        """Delete every split (files, shards, manifest) of one entry (to recompute a damaged one)."""
        self.manifest_path(dataset, embedder, key).unlink(missing_ok=True)  # invisible first
        for split in SPLITS:
            self.path(dataset, embedder, key, split).unlink(missing_ok=True)
        shards = self.directory(dataset, embedder, key) / "shards"
        if shards.is_dir():
            for shard in shards.iterdir():
                shard.unlink(missing_ok=True)
