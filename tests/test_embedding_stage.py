"""The embedding stage with real Ray and real models: one actor per embedder loads its model once,
shards are written and verified, a killed actor's work resumes at the first missing shard, the
precision an auto embedder resolves to is part of the store key, non-finite vectors are refused."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from orchestrator.config import ResourcesConfig
from orchestrator.console import Reporter
from orchestrator.embedding_stage import embedding_stage
from tests.tiny_models import INSTRUCTION, build_tiny_decoder
from workers.datasets import TextDataset
from workers.embedders import resolve_model
from workers.embedding import EmbeddingActor, EmbeddingJob, encode_batched, plan_batches
from workers.hashing import content_hash
from workers.specs import EmbedderSpec
from workers.store import EmbeddingStore, embedding_key

WORDS = ["the", "cat", "sat", "on", "a", "mat", "stock", "markets", "fell", "after", "rates", "rose", "bank", "film", "acting", "was", "wonderful", "boring", "plot", "story", "music", "team", "won", "the", "match"]
RESOURCES = ResourcesConfig(cpus_per_embedding=1)


def dataset(name: str, n_train: int, n_test: int, seed: int) -> TextDataset:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, int(rng.integers(1, 40)))) for _ in range(n_train + n_test)]
    labels = rng.integers(0, 2, n_train + n_test).astype(np.int64)
    return TextDataset(name=name, train_texts=texts[:n_train], train_labels=labels[:n_train],
                       test_texts=texts[n_train:], test_labels=labels[n_train:],
                       label_names=["a", "b"], fingerprint=content_hash(name, str(seed), *texts))


def job(spec: EmbedderSpec, data: TextDataset) -> EmbeddingJob:
    identity = resolve_model(spec).identity
    return EmbeddingJob(data.name, spec, embedding_key(identity, data.fingerprint), identity,
                        data.fingerprint)


def reporter() -> tuple[Reporter, Console]:
    console = Console(record=True, width=200)
    return Reporter(console), console


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_decoder(tmp_path_factory.mktemp("tiny-decoder"))


def decoder_spec(tiny: Path, **kw) -> EmbedderSpec:
    return EmbedderSpec(name=kw.pop("name", "tiny"), model=str(tiny), instruction=INSTRUCTION,
                        max_seq_length=128, **kw)


def test_plan_batches_bounds_tokens_and_shapes():
    lengths = np.array([3, 70, 17, 16, 33, 1, 64, 65] * 20)
    batches = plan_batches(lengths, token_budget=256, max_rows=1000)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    widths = []
    for rows in batches:
        width = int(-(-lengths[rows].max() // 16) * 16)
        assert len(rows) * width <= 256 or len(rows) == 1
        widths.append(width)
    assert widths == sorted(widths, reverse=True)  # longest first
    assert set(widths) <= {16, 32, 48, 64, 80}
    flat = np.concatenate(batches)  # exact lengths, longest first: little padding per batch
    assert np.all(np.diff(lengths[flat]) <= 0)


def test_two_datasets_one_embedder_load_the_model_once(ray_session, tmp_path, tiny):
    spec = decoder_spec(tiny)
    one, two = dataset("one", 60, 20, 1), dataset("two", 45, 15, 2)
    jobs = [job(spec, one), job(spec, two)]
    rep, console = reporter()
    result = embedding_stage(jobs, {"one": one, "two": two}, EmbeddingStore(tmp_path), RESOURCES, rep,
                             shard_rows=25)
    assert not result.errors
    assert [result.info[j.key]["loads"] for j in jobs] == [1, 1]  # one actor, one load
    assert "texts/s" in console.export_text()
    # the vectors are the embedder's own, in the input order
    local = EmbeddingActor(spec, threads=1).embedder
    np.testing.assert_allclose(result.data[jobs[1].key].train_x, local.encode(two.train_texts),
                               atol=1e-5)
    np.testing.assert_array_equal(result.data[jobs[1].key].test_y, two.test_labels)
    # store layout: shards + a manifest, under the key with the resolved precision
    store_key = jobs[0].store_key("float32")
    assert store_key != jobs[0].key
    assert result.info[jobs[0].key]["store_key"] == store_key
    entry = EmbeddingStore(tmp_path).directory("one", "tiny", store_key)
    assert sorted(p.name for p in (entry / "shards").iterdir()) == [
        "test-00000.parquet", "train-00000.parquet", "train-00001.parquet", "train-00002.parquet"]
    assert (entry / "manifest.json").is_file()
    # found again: nothing recomputed
    rep, console = reporter()
    again = embedding_stage(jobs, {"one": one, "two": two}, EmbeddingStore(tmp_path), RESOURCES, rep)
    assert not again.info and "found, skipped" in console.export_text()


def test_precision_is_part_of_the_store_key(tiny):
    data = dataset("p", 10, 5, 3)
    auto = job(decoder_spec(tiny), data)
    keys = {p: auto.store_key(p) for p in ("float32", "bfloat16", "float16")}
    assert len(set(keys.values())) == 3
    explicit = job(decoder_spec(tiny, precision="bfloat16"), data)
    assert explicit.store_key("whatever") == explicit.key != auto.key  # named in the identity
    glove = job(EmbedderSpec(name="g", model="glove-6b-50d"), data)
    assert glove.store_key("bfloat16") == glove.key  # computed in float32 whatever the device


def test_killed_actor_resumes_at_first_missing_shard(ray_session, tmp_path, tiny):
    import ray

    spec = decoder_spec(tiny, batch_size=8)
    data = dataset("big", 3000, 200, 4)
    the_job = job(spec, data)
    store = EmbeddingStore(tmp_path / "killed")
    key = the_job.store_key("float32")
    actor = ray.remote(EmbeddingActor).options(num_cpus=1, max_restarts=0).remote(spec, 1)
    ray.get(actor.info.remote())  # loaded
    ref = actor.embed.remote(the_job, data, str(store.root), 100, 256, True)
    first = store.shard_path("big", "tiny", key, "train", 1)
    deadline = time.monotonic() + 120
    while not first.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    ray.kill(actor, no_restart=True)
    with pytest.raises(ray.exceptions.RayError):
        ray.get(ref)
    shards = store.directory("big", "tiny", key) / "shards"
    kept = sorted(p.name for p in shards.glob("*.parquet"))
    assert 2 <= len(kept) < 32, kept  # killed mid-dataset
    assert not store.has("big", "tiny", key)  # no manifest: the entry is not visible
    stamps = {name: (shards / name).stat().st_mtime_ns for name in kept}

    rep, _ = reporter()
    resumed = embedding_stage([the_job], {"big": data}, store, RESOURCES, rep, shard_rows=100,
                              token_budget=256)
    info = resumed.info[the_job.key]
    assert info["kept"] == 100 * len(kept) and info["written"] == 3200 - 100 * len(kept)
    assert {name: (shards / name).stat().st_mtime_ns for name in kept} == stamps  # not rewritten

    rep, _ = reporter()
    whole = embedding_stage([the_job], {"big": data}, EmbeddingStore(tmp_path / "whole"), RESOURCES,
                            rep, shard_rows=100, token_budget=256)
    a, b = resumed.data[the_job.key], whole.data[the_job.key]
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.test_x, b.test_x)
    np.testing.assert_array_equal(a.train_y, data.train_labels)


def test_shards_spread_over_the_actors_of_an_embedder(ray_session, tmp_path, tiny):
    """Data-parallel: one dataset's shards go to two actors of the embedder (as two GPUs would
    get them); both write, one last call makes the entry visible, the vectors equal one actor's."""
    spec = decoder_spec(tiny, batch_size=8)
    data = dataset("wide", 500, 120, 5)
    the_job = job(spec, data)
    rep, _ = reporter()
    spread = embedding_stage([the_job], {"wide": data}, EmbeddingStore(tmp_path / "two"), RESOURCES,
                             rep, shard_rows=100, token_budget=256, actors=2)
    info = spread.info[the_job.key]
    assert info["parts"] == 2 and info["written"] == 620 and info["rows"] == 620
    assert info["loads"] == 1  # each actor loaded the model once, in its own process
    assert len(info["part_written"]) == 2 and min(info["part_written"]) > 0  # both actors wrote
    store = EmbeddingStore(tmp_path / "two")
    assert store.has("wide", "tiny", the_job.store_key(info["precision"]))

    rep, _ = reporter()
    one = embedding_stage([the_job], {"wide": data}, EmbeddingStore(tmp_path / "one"), RESOURCES,
                          rep, shard_rows=100, token_budget=256, actors=1)
    assert "parts" not in one.info[the_job.key]
    a, b = spread.data[the_job.key], one.data[the_job.key]
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.test_x, b.test_x)
    np.testing.assert_array_equal(a.train_y, data.train_labels)


def test_non_finite_vectors_fail_the_entry_not_the_stage(ray_session, tmp_path, tiny):
    import torch
    from sentence_transformers import SentenceTransformer

    broken = tmp_path / "broken"
    model = SentenceTransformer(str(tiny), device="cpu")
    with torch.no_grad():
        next(model[0].auto_model.parameters()).fill_(float("nan"))
    model.save(str(broken))
    data = dataset("d", 30, 10, 5)
    bad = job(EmbedderSpec(name="broken", model=str(broken), max_seq_length=128), data)
    good = job(EmbedderSpec(name="glove", model="glove-6b-50d"), data)
    rep, _ = reporter()
    result = embedding_stage([bad, good], {"d": data}, EmbeddingStore(tmp_path / "s"), RESOURCES, rep)
    assert good.key in result.data and bad.key not in result.data
    assert "embedders[broken]" in result.errors[bad.key]
    assert "not finite" in result.errors[bad.key] and "precision" in result.errors[bad.key]
    assert not EmbeddingStore(tmp_path / "s").has("d", "broken", bad.store_key("float32"))


def test_runtime_env_reaches_the_embedding_actor(ray_session, tiny):
    import ray

    spec = decoder_spec(tiny, runtime_env={"env_vars": {"ALBENCH_EMBEDDER_MARK": "tiny-42"}})
    actor = ray.remote(EmbeddingActor).options(num_cpus=1, runtime_env=spec.runtime_env.ray()).remote(spec, 1)
    try:
        assert ray.get(actor.info.remote())["env"] == {"ALBENCH_EMBEDDER_MARK": "tiny-42"}
    finally:
        ray.kill(actor)
    assert os.environ.get("ALBENCH_EMBEDDER_MARK") is None


def test_runtime_env_pins_a_package_for_one_embedder(ray_session, tmp_path):
    """A pure-Python pin (as NV-Embed-v2 pins transformers): Ray installs it for this embedder's
    actor only; the version is what the actor sees and is recorded in the store metadata.

    GloVe: Ray's pip environment is a copy of this virtualenv without its bytecode, where an
    embedder importing sentence-transformers starts ~10 s later (measured: its import takes
    16.6 s without .pyc, 6.9 s with, on 2 cores)."""
    from importlib.metadata import PackageNotFoundError, version

    with pytest.raises(PackageNotFoundError):
        version("humanize")  # not in the driver's environment
    spec = EmbedderSpec(name="glove", model="glove-6b-50d", runtime_env={"pip": ["humanize==4.9.0"]})
    data = dataset("pinned", 40, 10, 6)
    the_job = job(spec, data)
    rep, _ = reporter()
    result = embedding_stage([the_job], {"pinned": data}, EmbeddingStore(tmp_path), RESOURCES, rep)
    assert not result.errors, result.errors
    store = EmbeddingStore(tmp_path)
    table = store.read("pinned", "glove", the_job.store_key("float32"), "train")
    assert table.metadata["packages"] == {"humanize": "4.9.0"}


def test_encode_batched_keeps_the_order(tiny):
    spec = decoder_spec(tiny)
    embedder = EmbeddingActor(spec, threads=1).embedder
    texts = dataset("o", 80, 1, 6).train_texts
    np.testing.assert_allclose(encode_batched(embedder, texts, 128), embedder.encode(texts), atol=1e-5)


@pytest.mark.parametrize("model", ["tiny", "all-MiniLM-L6-v2"])
def test_tokenized_once_equals_the_model_own_preprocessing(tiny, model):
    """Texts tokenized once and padded per batch give the vectors SentenceTransformer.encode
    gives when it tokenizes each batch itself, bit for bit (a text beyond the limit included)."""
    spec = decoder_spec(tiny) if model == "tiny" else EmbedderSpec(name="m", model=model,
                                                                  query_prompt="query: ")
    embedder = EmbeddingActor(spec, threads=1).embedder
    texts = dataset("t", 70, 1, 7).train_texts + ["a very long text " * 200, ""]
    tokens = embedder.tokenize(texts)
    assert tokens.ids is not None  # the once-tokenized path is taken for both models
    plain = replace(tokens, ids=None)  # the same batches, each tokenized by encode
    for rows in plan_batches(tokens.lengths, 256, max_rows=embedder.batch_size):
        assert np.array_equal(embedder.encode_tokens(tokens, rows),
                              embedder.encode_tokens(plain, rows))
