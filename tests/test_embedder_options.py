"""Embedder options (instruction, prompt_name, pooling, padding_side, model_kwargs, precision,
trust_remote_code, runtime_env), golden vectors and the non-finite refusal, with real models:
the built-ins and a tiny decoder-only model built offline (seeded random weights)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from tests.golden import GOLDEN, TEXTS, embed_all
from tests.tiny_models import INSTRUCTION, build_tiny_decoder, manual_last_token
from workers.embedders import EmbedderError, load_embedder, resolve_model
from workers.embedders.base import effective_precision
from workers.specs import EmbedderSpec
from workers.store import EmbeddingStore


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_decoder(tmp_path_factory.mktemp("tiny-decoder"))


def spec(model: str, **kw) -> EmbedderSpec:
    return EmbedderSpec(name=kw.pop("name", "e"), model=model, **kw)


def test_golden_vectors(tiny: Path):
    expected = np.load(GOLDEN)
    got = embed_all(tiny)
    assert set(got) == {"tfidf-svd", "glove-6b-50d", "all-MiniLM-L6-v2", "tiny-decoder"}
    for name, vectors in got.items():
        want = expected[name.replace("-", "_")]
        assert vectors.shape == want.shape == (len(TEXTS), want.shape[1]), name
        cos = (vectors * want).sum(1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(want, axis=1))
        assert cos.min() >= 0.999, (name, cos)


def test_tiny_decoder_last_token_with_instruction_equals_plain_transformers(tiny: Path):
    texts = ["the cat sat on the mat", "stocks fell", "a longer sentence about rates and markets"]
    reference = manual_last_token(tiny.parent / "hf", texts, INSTRUCTION)
    by_instruction = load_embedder(spec(str(tiny), instruction=INSTRUCTION), "cpu").encode(texts)
    by_name = load_embedder(spec(str(tiny), prompt_name="query"), "cpu").encode(texts)
    np.testing.assert_allclose(by_instruction, reference, atol=1e-5)
    np.testing.assert_allclose(by_name, reference, atol=1e-5)
    no_prompt = load_embedder(spec(str(tiny)), "cpu").encode(texts)
    assert np.abs(no_prompt - reference).max() > 1e-3  # the instruction changes the vectors


def test_pooling_for_a_folder_without_one(tiny: Path):
    texts = ["the cat sat on the mat", "stocks fell"]
    hf = str(tiny.parent / "hf")  # config.json only: sentence-transformers would mean-pool
    last = load_embedder(spec(hf, pooling="lasttoken", padding_side="left", max_seq_length=128,
                              instruction=INSTRUCTION), "cpu")
    assert last.model.tokenizer.padding_side == "left"
    np.testing.assert_allclose(last.encode(texts), manual_last_token(Path(hf), texts, INSTRUCTION),
                               atol=1e-5)
    mean = load_embedder(spec(hf, max_seq_length=128, instruction=INSTRUCTION), "cpu").encode(texts)
    assert np.abs(mean - last.encode(texts)).max() > 1e-3
    with pytest.raises(EmbedderError, match=r"embedders\[e\]\.pooling: .*'lasttoken'"):
        load_embedder(spec(str(tiny), pooling="mean"), "cpu")  # the folder defines lasttoken


def test_new_options_enter_the_identity_only_when_set(tiny: Path):
    base = resolve_model(spec(str(tiny))).identity
    assert "pooling" not in base and "trust_remote_code" not in base
    assert resolve_model(spec(str(tiny), instruction="q: ")).identity == \
        resolve_model(spec(str(tiny), query_prompt="q: ")).identity
    for extra in ({"prompt_name": "query"}, {"padding_side": "left"}, {"pooling": "lasttoken"},
                  {"model_kwargs": {"attn_implementation": "eager"}}, {"trust_remote_code": True}):
        assert resolve_model(spec(str(tiny), **extra)).identity != base, extra


def test_precision_auto_and_identity(tiny: Path):
    auto = spec(str(tiny))
    assert effective_precision(auto, "cpu") == "float32"
    assert effective_precision(spec(str(tiny), model_kwargs={"dtype": "bfloat16"}), "cpu") == "bfloat16"
    ids = {p: resolve_model(spec(str(tiny), precision=p), "cpu").identity
           for p in ("float32", "bfloat16", "float16")}
    assert len(set(ids.values())) == 3
    assert resolve_model(auto, "cpu").identity == ids["float32"]
    bf16 = load_embedder(spec(str(tiny), precision="bfloat16"), "cpu")
    assert bf16.precision == "bfloat16" and next(bf16.model.parameters()).dtype.__str__() == "torch.bfloat16"
    x = bf16.encode(TEXTS)
    assert x.dtype == np.float32 and np.isfinite(x).all()
    with pytest.raises(ValidationError, match="contradicts precision"):
        spec(str(tiny), precision="float16", model_kwargs={"dtype": "bfloat16"})


def test_attention_implementation_whitelist(tiny: Path):
    with pytest.raises(ValidationError, match="attn_implementation"):
        spec(str(tiny), model_kwargs={"attn_implementation": "my_kernel"})
    with pytest.raises(ValidationError, match="extra"):
        spec(str(tiny), model_kwargs={"device_map": "auto"})  # only the whitelist passes
    eager = load_embedder(spec(str(tiny), model_kwargs={"attn_implementation": "eager"},
                               instruction=INSTRUCTION), "cpu")
    sdpa = load_embedder(spec(str(tiny), model_kwargs={"attn_implementation": "sdpa"},
                              instruction=INSTRUCTION), "cpu")
    assert eager.model[0].auto_model.config._attn_implementation == "eager"
    np.testing.assert_allclose(eager.encode(TEXTS), sdpa.encode(TEXTS), atol=1e-4)


def _remote_code_folder(root: Path) -> Path:
    root.mkdir()
    (root / "config.json").write_text(json.dumps({
        "model_type": "albench-custom", "architectures": ["CustomModel"],
        "auto_map": {"AutoConfig": "configuration_custom.CustomConfig",
                     "AutoModel": "modeling_custom.CustomModel"}}))
    for name in ("configuration_custom.py", "modeling_custom.py"):
        (root / name).write_text("raise RuntimeError('the repository code ran')\n")
    return root


def test_trust_remote_code_off_by_default(tmp_path: Path, caplog):
    folder = _remote_code_folder(tmp_path / "custom")
    assert spec(str(folder)).trust_remote_code is False
    with pytest.raises(EmbedderError, match=r"embedders\[e\]\.trust_remote_code: .*set trust_remote_code: true"):
        load_embedder(spec(str(folder)), "cpu")
    with caplog.at_level("WARNING"), pytest.raises(EmbedderError, match="the repository code ran"):
        load_embedder(spec(str(folder), trust_remote_code=True), "cpu")  # on: the code runs
    assert "runs Python code from the model's repository" in caplog.text


def test_builtins_reject_transformers_options():
    for extra in ({"instruction": "q: "}, {"pooling": "cls"}, {"trust_remote_code": True},
                  {"model_kwargs": {"attn_implementation": "sdpa"}}):
        field = next(iter(extra))
        with pytest.raises(EmbedderError, match=rf"embedders\[e\]\.({field}|model_kwargs)"):
            resolve_model(spec("glove-6b-50d", **extra))


def test_runtime_env_takes_pip_and_env_vars_only():
    env = spec("glove-6b-50d", runtime_env={"pip": ["six==1.16.0"], "env_vars": {"A_B": "1"}})
    assert env.runtime_env.ray() == {"pip": ["six==1.16.0"], "env_vars": {"A_B": "1"}}
    for bad in ({"py_modules": ["x"]}, {"working_dir": "."}, {"pip": ["six; import os"]},
                {"env_vars": {"1X": "a"}}):
        with pytest.raises(ValidationError):
            spec("glove-6b-50d", runtime_env=bad)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_vectors_are_refused_at_write(tmp_path: Path, bad: float):
    store = EmbeddingStore(tmp_path)
    vectors = np.ones((5, 4), dtype=np.float32)
    vectors[3, 1] = bad
    with pytest.raises(EmbedderError, match=r"embedders\[big-llm\]: 1 of 5 vectors are not finite .*"
                                            r"in float16.*fix: set embedders\[big-llm\]\.precision"):
        store.write("d", "big-llm", "k" * 64, "train", vectors, np.zeros(5), {"precision": "float16"})
    assert not store.path("d", "big-llm", "k" * 64, "train").exists()
    big = np.full((2, 4), 1e6, dtype=np.float32)  # finite in float32, overflows float16 storage
    with pytest.raises(EmbedderError, match="not finite"):
        store.write("d", "big-llm", "k" * 64, "train", big, np.zeros(2), {}, dtype="float16")
