"""The Parquet embedding store: written by the embedding workers, read by the driver and actors.

Layout: ``<root>/<dataset>/<embedder>-<key[:16]>/`` holding either ``shards/<split>-NNNNN.parquet``
and a ``manifest.json`` written last (what the embedding stage writes; the entry exists only
once the manifest does), or one ``<split>.parquet`` per split (``write``), where ``key`` is a content
address (embedder identity and settings, dataset fingerprint). Columns: ``row_id`` (int64),
``label`` (int64), ``embedding`` (``fixed_size_list<float32|float16>[dim]``). Schema metadata
records the model, dim, normalisation, dataset fingerprint, albench version, the row count and a
sha256 of the column data, which ``read`` verifies, so a truncated or corrupted file is reported,
never silently used.

The root is a local folder or an object-store URI (``s3://bucket/prefix``; ``workers.fs``), one
code path for both: each file is serialised in memory and written whole (``workers.fs.write_whole``:
a temporary name and a rename on a disk, one upload on an object store), so a reader never sees
a partial file, and an entry is visible only once its manifest, written last and listing every
shard's row count and checksum, is there and verifies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from workers.embedders.base import check_finite
from workers.fs import ObjectPath, location, write_whole
from workers.hashing import content_hash

SPLITS = ("train", "test")
FORMAT_VERSION = "1"
_META_KEY = b"albench"
PRECISIONS = ("float32", "bfloat16", "float16")
"""The precisions an embedder's ``precision: auto`` can resolve to (its entries' keys differ)."""
_AUTO = '"precision":"auto"'
"""How an identity whose precision is resolved on the device reads (``identity_json``)."""


def resolves_precision(identity: str) -> bool:
    """Whether the vectors of ``identity`` are computed in the precision ``auto`` resolves to
    on the device (so the entry's key names that precision)."""
    return _AUTO in identity


def store_key(key: str, identity: str, precision: str) -> str:
    """The store address of an entry: ``key`` where the identity names its precision, else ``key``
    with the precision ``auto`` resolved to (fp32 and bf16 vectors never share one). The trial
    key keeps ``key``."""
    return content_hash(key, ":precision=", precision) if resolves_precision(identity) else key


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


StorePath = Path | ObjectPath
"""Where a store file is: a ``Path`` in a local store, an ``ObjectPath`` on an object store."""


class EmbeddingStore:
    """A directory (local, or a prefix of an object store) of content-addressed embedding files."""

    def __init__(self, root: str | Path | ObjectPath) -> None:
        self.root = location(root)

    @property
    def remote(self) -> bool:
        return isinstance(self.root, ObjectPath)

    def directory(self, dataset: str, embedder: str, key: str) -> StorePath:
        return self.root / dataset / f"{embedder}-{key[:16]}"

    def path(self, dataset: str, embedder: str, key: str, split: str) -> StorePath:
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
    ) -> StorePath:
        """Write one split whole (``workers.fs.write_whole``); returns the final path.

        Non-finite vectors are refused (``EmbedderError`` naming the embedder and the fix)."""
        target = self.path(dataset, embedder, key, split)
        n = len(embeddings)
        return self._write_file(target, embedder, key, split, embeddings, labels,
                                np.arange(n, dtype=np.int64), metadata, dtype)

    def _write_file(self, target: StorePath, embedder: str, key: str, split: str, embeddings: np.ndarray,
                    labels: np.ndarray, row_ids: np.ndarray, metadata: dict, dtype: str) -> StorePath:
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
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        write_whole(target, sink.getvalue())
        return target

    # ------------------------------------------------------------------------- sharded entries
    # ``<entry>/shards/<split>-<index:05d>.parquet`` (rows [index*shard_rows, ...) of the split,
    # row_id = the row's index in the split), then ``<entry>/manifest.json``, written last: the
    # entry exists (``has``) only once the manifest does, and a reader trusts it only when every
    # shard it lists has the row count and checksum it records. A shard is verified right after
    # its write; a resumed job keeps the shards that verify and writes from the first missing one.

    def shard_path(self, dataset: str, embedder: str, key: str, split: str, index: int) -> StorePath:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.directory(dataset, embedder, key) / "shards" / f"{split}-{index:05d}.parquet"

    def manifest_path(self, dataset: str, embedder: str, key: str) -> StorePath:
        return self.directory(dataset, embedder, key) / "manifest.json"

    def write_shard(self, dataset: str, embedder: str, key: str, split: str, index: int,
                    start: int, embeddings: np.ndarray, labels: np.ndarray, metadata: dict,
                    dtype: str = "float32") -> str:
        """Write one shard whole and verify it by reading it back; returns its checksum (for
        ``write_manifest``'s ``verified``)."""
        path = self.shard_path(dataset, embedder, key, split, index)
        rows = np.arange(start, start + len(embeddings), dtype=np.int64)
        self._write_file(path, embedder, key, split, embeddings, labels, rows,
                         {**metadata, "shard": index}, dtype)
        # raises StoreCorruptionError when it does not verify
        return self._read_file(path, key).metadata["checksum"]

    def shard_checksum(self, dataset: str, embedder: str, key: str, split: str, index: int,
                       rows: int) -> str | None:
        """The checksum of the shard when it exists, verifies and holds ``rows`` rows, else None."""
        path = self.shard_path(dataset, embedder, key, split, index)
        try:
            table = self._read_file(path, key)
        except (FileNotFoundError, StoreCorruptionError):
            return None
        return table.metadata["checksum"] if len(table) == rows else None

    def write_manifest(self, dataset: str, embedder: str, key: str, shards: dict[str, list[int]],
                       metadata: dict, verified: dict[tuple[str, int], str] | None = None) -> StorePath:
        """Make a sharded entry visible: ``shards`` maps each split to its shards' row counts.

        Every shard is verified first (``verified``: the checksums of the ``(split, index)``
        shards the caller itself verified just before, by ``write_shard`` or ``shard_checksum``,
        which are not read again); the manifest records each one's row count and checksum (and
        each split's total), and is written last, whole."""
        if set(shards) != set(SPLITS):
            raise ValueError(f"a manifest lists every split {SPLITS}")
        verified = verified or {}
        checksums: dict[str, list[str]] = {}
        for split, counts in shards.items():
            checksums[split] = []
            for index, rows in enumerate(counts):
                checksum = verified.get((split, index)) or self.shard_checksum(
                    dataset, embedder, key, split, index, rows)
                if checksum is None:
                    raise StoreCorruptionError(
                        f"{self.shard_path(dataset, embedder, key, split, index)}: missing or "
                        "damaged; the entry is not complete")
                checksums[split].append(checksum)
        target = self.manifest_path(dataset, embedder, key)
        body = {**metadata, "format_version": FORMAT_VERSION, "key": key, "shards": shards,
                "checksums": checksums, "rows": {s: sum(c) for s, c in shards.items()}}
        write_whole(target, json.dumps(body, sort_keys=True).encode())
        return target

    def _read_manifest(self, dataset: str, embedder: str, key: str) -> dict | None:
        path = self.manifest_path(dataset, embedder, key)
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise StoreCorruptionError(f"{path}: unreadable manifest ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("key") != key:
            raise StoreCorruptionError(f"{path}: the manifest is another entry's")
        shards, checksums = manifest.get("shards"), manifest.get("checksums")
        if not isinstance(shards, dict) or set(shards) != set(SPLITS) or (
                checksums is not None and {s: len(c) for s, c in checksums.items()}
                != {s: len(c) for s, c in shards.items()}):
            raise StoreCorruptionError(f"{path}: the manifest does not list every split's shards")
        return manifest

    def read(self, dataset: str, embedder: str, key: str, split: str) -> EmbeddingTable:
        """Read and verify one split; raises StoreCorruptionError when verification fails."""
        manifest = self._read_manifest(dataset, embedder, key)
        if manifest is None:
            return self._read_file(self.path(dataset, embedder, key, split), key)
        parts = []
        checksums = (manifest.get("checksums") or {}).get(split)  # older manifests: none
        for index, rows in enumerate(manifest["shards"][split]):
            path = self.shard_path(dataset, embedder, key, split, index)
            try:
                part = self._read_file(path, key)
            except FileNotFoundError:
                raise StoreCorruptionError(f"{path}: a shard the manifest lists is missing") from None
            if len(part) != rows:
                raise StoreCorruptionError(f"{path}: {len(part)} rows, the manifest says {rows}")
            if checksums is not None and part.metadata["checksum"] != checksums[index]:
                raise StoreCorruptionError(f"{path}: not the shard the manifest lists (checksum)")
            parts.append(part)
        meta = {k: v for k, v in manifest.items() if k not in ("shards", "checksums", "rows")}
        if not parts:
            raise StoreCorruptionError(f"{self.manifest_path(dataset, embedder, key)}: no shards")
        meta.update(dim=parts[0].metadata["dim"], dtype=parts[0].metadata["dtype"], split=split,
                    rows=sum(len(p) for p in parts))
        return EmbeddingTable(np.concatenate([p.row_ids for p in parts]),
                              np.concatenate([p.labels for p in parts]),
                              np.concatenate([p.embeddings for p in parts]), meta)

    def _read_file(self, path: StorePath, key: str) -> EmbeddingTable:
        data = path.read_bytes()  # FileNotFoundError when there is none
        try:
            table = pq.read_table(pa.BufferReader(data))
            meta = json.loads(table.schema.metadata[_META_KEY])
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise StoreCorruptionError(f"{path}: unreadable Parquet ({exc})") from exc
        expected = pa.schema(
            [("row_id", pa.int64()), ("label", pa.int64()),
             ("embedding", pa.list_(pa.from_numpy_dtype(np.dtype(meta["dtype"])), meta["dim"]))]
        )
        if not table.schema.remove_metadata().equals(expected):
            raise StoreCorruptionError(f"{path}: schema {table.schema} is not the store's")
        if meta["key"] != key:
            raise StoreCorruptionError(f"{path}: the file is the entry {meta['key'][:16]}'s, not "
                                       f"{key[:16]}'s (a file copied or moved between entries)")
        if table.num_rows != meta["rows"]:
            raise StoreCorruptionError(f"{path}: {table.num_rows} rows, metadata says {meta['rows']}")
        row_ids = table.column("row_id").to_numpy()
        labels = table.column("label").to_numpy()
        flat = table.column("embedding").combine_chunks().values.to_numpy(zero_copy_only=False)
        embeddings = flat.reshape(table.num_rows, meta["dim"])
        if _checksum(row_ids, labels, embeddings) != meta["checksum"]:
            raise StoreCorruptionError(f"{path}: checksum mismatch, the file was altered")
        return EmbeddingTable(row_ids, labels, embeddings, meta)

    # ------------------------------------------------------------------- an entry of a job
    # ``job``: an ``EmbeddingJob`` (dataset_name, embedder.name, store_key(precision)).

    def find(self, job) -> str | None:
        """The key under which ``job``'s vectors are stored, in whichever precision, or None."""
        for precision in PRECISIONS:
            key = job.store_key(precision)
            if self.has(job.dataset_name, job.embedder.name, key):
                return key
        return None

    def verified(self, job, key: str, labels: dict[str, np.ndarray] | None) -> tuple[dict, list[str]]:
        """Both splits of ``job``'s entry ``key``, each read and verified (``read``) and checked
        against the dataset it claims to embed (``labels``: split -> the dataset's labels; None:
        not checked), and the splits' dimensions against each other: (tables by split, one
        message per problem, naming what mismatched)."""
        tables, problems = {}, []
        for split in SPLITS:
            path = self.directory(job.dataset_name, job.embedder.name, key) / split
            try:
                table = self.read(job.dataset_name, job.embedder.name, key, split)
            except StoreCorruptionError as exc:
                problems.append(str(exc))
                continue
            wanted = None if labels is None else labels[split]
            if wanted is not None and len(table) != len(wanted):
                problems.append(f"{path}: {len(table)} rows, the dataset's {split} split has {len(wanted)}")
            elif wanted is not None and not np.array_equal(table.labels, wanted):
                differ = int(np.count_nonzero(table.labels != wanted))
                problems.append(f"{path}: the labels of {differ} of {len(table)} rows differ from the "
                                f"dataset's (another version of the dataset)")
            else:
                tables[split] = table
        if len(tables) == len(SPLITS) and len({t.embeddings.shape[1] for t in tables.values()}) > 1:
            problems.append(f"{job.dataset_name} x {job.embedder.name}: the splits' dimensions differ "
                            f"({', '.join(f'{s} {t.embeddings.shape[1]}' for s, t in tables.items())})")
        return tables, problems

    def clear_partial(self, job, precision: str) -> None:
        """Before computing ``job`` in ``precision``: remove the split files of an old-layout half
        entry and the temporaries of a killed write; shards that verify stay (the job resumes
        after them)."""
        key = job.store_key(precision)
        for split in SPLITS:
            self.path(job.dataset_name, job.embedder.name, key, split).unlink(missing_ok=True)
        directory = self.directory(job.dataset_name, job.embedder.name, key)
        if directory.is_dir():
            for leftover in directory.rglob(".*.tmp"):
                leftover.unlink(missing_ok=True)

    def remove(self, dataset: str, embedder: str, key: str) -> None:
        """Delete every split (files, shards, manifest) of one entry (to recompute a damaged one)."""
        self.manifest_path(dataset, embedder, key).unlink(missing_ok=True)  # invisible first
        for split in SPLITS:
            self.path(dataset, embedder, key, split).unlink(missing_ok=True)
        shards = self.directory(dataset, embedder, key) / "shards"
        if shards.is_dir():
            for shard in shards.iterdir():
                shard.unlink(missing_ok=True)
