"""The Parquet embedding store: round trip, verification, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from workers.embedding import EmbeddingJob
from workers.specs import EmbedderSpec
from workers.store import EmbeddingStore, StoreCorruptionError, _checksum, embedding_key

META = {"model": "m", "normalize": True, "dataset_fingerprint": "f", "albench_version": "t"}


def _write(store, split="train", n=50, dim=8, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    path = store.write("ds", "emb", "k" * 64, split, x, y, META, dtype=dtype)
    return path, x, y


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip(tmp_path, dtype):
    store = EmbeddingStore(tmp_path)
    path, x, y = _write(store, dtype=dtype)
    table = store.read("ds", "emb", "k" * 64, "train")
    np.testing.assert_array_equal(table.labels, y)
    np.testing.assert_array_equal(table.row_ids, np.arange(50))
    np.testing.assert_allclose(table.embeddings, x.astype(dtype), rtol=0)
    assert table.embeddings.dtype == np.dtype(dtype) and table.embeddings.shape == (50, 8)
    schema = pq.read_schema(path)
    import pyarrow as pa

    column_type = schema.field("embedding").type
    assert pa.types.is_fixed_size_list(column_type) and column_type.list_size == 8
    assert column_type.value_type == pa.from_numpy_dtype(np.dtype(dtype))
    meta = json.loads(schema.metadata[b"albench"])
    assert meta["model"] == "m" and meta["dim"] == 8 and meta["rows"] == 50
    assert meta["dataset_fingerprint"] == "f" and meta["albench_version"] == "t"


def test_has_requires_both_splits(tmp_path):
    store = EmbeddingStore(tmp_path)
    _write(store, "train")
    assert not store.has("ds", "emb", "k" * 64)
    _write(store, "test")
    assert store.has("ds", "emb", "k" * 64)


def test_truncated_file_is_detected(tmp_path):
    store = EmbeddingStore(tmp_path)
    path, _, _ = _write(store)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(StoreCorruptionError, match="unreadable"):
        store.read("ds", "emb", "k" * 64, "train")


def test_flipped_bytes_are_detected(tmp_path):
    store = EmbeddingStore(tmp_path)
    path, _x, _y = _write(store, n=400, dim=16)
    # rewrite with altered values but the original metadata: only the checksum can notice
    table = pq.read_table(path)
    flat = table.column("embedding").combine_chunks().values.to_numpy().copy()
    flat[17] += 1.0
    import pyarrow as pa

    altered = table.set_column(2, "embedding", pa.FixedSizeListArray.from_arrays(pa.array(flat), 16))
    pq.write_table(altered.replace_schema_metadata(table.schema.metadata), path)
    with pytest.raises(StoreCorruptionError, match="checksum"):
        store.read("ds", "emb", "k" * 64, "train")
    raw = bytearray(path.read_bytes())
    for offset in range(200, 260):
        raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreCorruptionError):
        store.read("ds", "emb", "k" * 64, "train")


def test_failure_mid_write_leaves_no_file(tmp_path, monkeypatch):
    store = EmbeddingStore(tmp_path)

    def write_half_then_fail(table, sink, **kwargs):
        sink.write(b"PAR1" + b"\0" * 100)  # some bytes reached the disk, then the disk filled up
        raise OSError("No space left on device")

    monkeypatch.setattr(pq, "write_table", write_half_then_fail)
    with pytest.raises(OSError, match="No space"):
        _write(store)
    directory = store.directory("ds", "emb", "k" * 64)
    assert list(directory.iterdir()) == []  # neither the final name nor a temporary remains


def test_rewrite_replaces_atomically(tmp_path):
    store = EmbeddingStore(tmp_path)
    _write(store, seed=0)
    _, x2, _ = _write(store, seed=1)
    np.testing.assert_array_equal(store.read("ds", "emb", "k" * 64, "train").embeddings, x2)


def test_key_is_content_addressed():
    assert embedding_key("a", "f") == embedding_key("a", "f")
    assert embedding_key("a", "f") != embedding_key("a", "g") != embedding_key("b", "f")


# ------------------------------------------------------------------------- shared helpers


def test_atomic_write_replaces_and_syncs(tmp_path, monkeypatch):
    import os

    from workers.files import atomic_write

    target = tmp_path / "f.json"
    target.write_text("old")
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with atomic_write(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".tmp")
        temporary.write_text("new")
        assert target.read_text() == "old"  # readers see the old file until the block ends
    assert target.read_text() == "new"
    assert list(tmp_path.iterdir()) == [target]
    if os.path.exists("/proc/self/fd"):  # the file, then its folder
        assert synced == [str(temporary), str(tmp_path)]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    from workers.files import atomic_write

    target = tmp_path / "f.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="midway"), atomic_write(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("midway")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_content_hash_is_sha256_of_the_bytes():
    import hashlib

    from workers.hashing import content_hash, content_hash_of

    x = np.arange(6, dtype=np.int64)
    assert content_hash("é", b"b", x.data) == hashlib.sha256("é".encode() + b"b" + x.tobytes()).hexdigest()
    assert content_hash_of(iter([b"a", "b"])) == content_hash("ab") == hashlib.sha256(b"ab").hexdigest()
    # pinned before the shared helper: the key keeps json.dumps' default separators
    assert embedding_key("ident\u00e9", "fp") == "56cd14b3ff500776341efa3d74890b488890dd94c2cfdbe79629d0194a11b57f"
    rng = np.random.default_rng(0)
    row_ids, labels = np.arange(5), rng.integers(0, 3, 5)
    assert _checksum(row_ids, labels, rng.normal(size=(5, 4)).astype(np.float16)) == (
        "9ac37f5d1a5860ed3f58ebda0fd7ca7f7236310ae8be101d1df786d82c6d9300"
    )


def test_stable_hash_is_pinned():
    from pathlib import Path

    from workers.specs import stable_hash

    # compact separators and str() of non-JSON values, as trial keys have always been hashed
    assert stable_hash({"b": [1, "\u00e9"], "a": Path("/x")}) == (
        "4e812623d405005ae89c5cf8d87932607b754830d8ee86f880ccd2510d27460d"
    )


def _job(identity: str) -> EmbeddingJob:
    return EmbeddingJob("ds", EmbedderSpec(name="emb", model="tfidf-svd"), "k" * 64, identity, "f")


def test_find_looks_in_every_precision_auto_may_have_resolved_to(tmp_path):
    store = EmbeddingStore(tmp_path)
    auto = _job('{"settings":{"precision":"auto"}}')
    key = auto.store_key("bfloat16")
    assert store.find(auto) is None and key != "k" * 64
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        store.write("ds", "emb", key, split, rng.normal(size=(5, 4)).astype(np.float32), np.arange(5), META)
    assert store.find(auto) == key
    assert store.find(_job('{"settings":{"precision":"float32"}}')) is None  # its key is "k" * 64


def test_a_file_of_another_entry_is_named_as_such_not_as_a_row_count(tmp_path):
    store = EmbeddingStore(tmp_path)
    path, _, _ = _write(store)
    other = store.path("ds", "emb", "o" * 64, "train")
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(path.read_bytes())
    with pytest.raises(StoreCorruptionError, match=r"the file is the entry k{16}'s, not o{16}'s"):
        store.read("ds", "emb", "o" * 64, "train")


def test_verified_says_whether_the_rows_or_the_labels_differ_from_the_dataset(tmp_path):
    store = EmbeddingStore(tmp_path)
    _, _, y_train = _write(store, "train")
    _, _, y_test = _write(store, "test", n=20, seed=1)
    job = _job("{}")
    tables, problems = store.verified(job, "k" * 64, {"train": y_train, "test": y_test})
    assert set(tables) == {"train", "test"} and problems == []
    relabelled = y_train.copy()
    relabelled[:3] = (relabelled[:3] + 1) % 3
    _, problems = store.verified(job, "k" * 64, {"train": relabelled, "test": y_test[:10]})
    assert problems[0].endswith("train: the labels of 3 of 50 rows differ from the dataset's (another "
                                "version of the dataset)")
    assert problems[1].endswith("test: 20 rows, the dataset's test split has 10")
