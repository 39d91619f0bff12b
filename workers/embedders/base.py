"""What every embedder kind shares: the ``Embedder`` protocol, the resolved model, the kind
registry, and the helpers for identities, errors and normalisation.

A kind (``tfidf-svd``, ``glove``, ``sentence-transformers``, ...) is an ``EmbedderKind``
subclass; defining it registers it in ``KINDS`` under its ``name``. A built-in kind is one module
of this package (the package imports every module it holds); another package adds one through
the entry-point group ``albench.embedders``, with the named models it provides (``models``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from strategies.registry import PluginRefused, Registry, subclass_check
from workers.hashing import content_hash

if TYPE_CHECKING:
    from workers.embedders.builtins import BuiltinEmbedderInfo
    from workers.specs import EmbedderSpec

IMPLEMENTATION_VERSION = 1
"""Bumped when albench changes how a built-in computes its vectors (part of the identity)."""


class EmbedderError(ValueError):
    """An embedder spec that cannot be resolved or loaded; the message names the field and the fix."""


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
        return content_hash(self.identity)


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


def _check_kind(name: str, cls: object) -> None:
    subclass_check(EmbedderKind, lambda kind: kind.name)(name, cls)
    for model, info in cls.models.items():
        if info.kind != name:
            raise PluginRefused(f"{cls.__name__}.models[{model!r}].kind is {info.kind!r}, not {name!r}")


KINDS: Registry[type[EmbedderKind]] = Registry("embedder kind", "albench.embedders", _check_kind)
"""Registered embedder kinds by name (``BuiltinEmbedderInfo.kind`` names one)."""


class EmbedderKind(ABC):
    """How one kind of embedder is checked, identified and loaded.

    Subclass it and set ``name``: the class registers itself in ``KINDS``. ``load`` may import
    heavy modules; the module itself must not.
    """

    name: ClassVar[str]
    """The kind's name, as ``BuiltinEmbedderInfo.kind`` gives it."""
    takes_prompt: ClassVar[bool] = False
    """Whether ``query_prompt`` applies (else a built-in of this kind rejects it)."""
    models: ClassVar[dict[str, BuiltinEmbedderInfo]] = {}
    """Named models of this kind that a config's ``model:`` can give, as built-ins are (a
    plug-in's; albench's own are in ``builtins.BUILTIN_EMBEDDERS``). Their ``package``'s version
    enters the identity."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in vars(cls):
            KINDS.add_builtin(cls.name, cls)

    def check_builtin(self, spec: EmbedderSpec, name: str, info: BuiltinEmbedderInfo) -> None:
        """Raise ``EmbedderError`` for a ``dim`` a built-in of this kind cannot give (default: any)."""

    def identity_settings(self, spec: EmbedderSpec, dim: int | None, device: str | None) -> dict:
        """The settings that change the vectors, as the identity records them.

        Default: computed in float32/float64 by numpy/scikit-learn; no tokens limit, no prompt.
        """
        return {
            "dim": dim,
            "normalize": spec.normalize,
            "precision": "float32",
            "store_dtype": spec.store_dtype,
        }

    @abstractmethod
    def load(self, spec: EmbedderSpec, resolved: ResolvedModel, device: str) -> Embedder:
        """Build the embedder of a resolved spec on ``device`` ('cpu' or 'cuda'/'cuda:N')."""


# ------------------------------------------------------------------------------------ helpers


def identity_json(source: str, **settings: object) -> str:
    """The identity string: canonical compact JSON of the model source and its settings."""
    return json.dumps(
        {"source": source, "settings": settings}, sort_keys=True, separators=(",", ":")
    )


def field_name(spec: EmbedderSpec, name: str) -> str:
    """The config path of a spec field, as error messages start: ``embedders[<name>].<field>``."""
    return f"embedders[{spec.name}].{name}"


def reject(spec: EmbedderSpec, field: str, why: str, fix: str) -> EmbedderError:
    """The error for a setting ``field`` the model cannot take."""
    return EmbedderError(f"{field_name(spec, field)}: {why}; fix: {fix}")


def is_cuda(device: str) -> bool:
    return device == "cuda" or device.startswith("cuda:")


def effective_precision(spec: EmbedderSpec, device: str | None) -> str:
    """``spec.precision`` (or ``model_kwargs.dtype``) with 'auto' resolved for ``device``:
    bfloat16 on GPUs that support it, float16 on older ones, float32 on CPU; 'auto' when no
    device is given (the driver, which may see no GPU)."""
    wanted = spec.wanted_precision
    if wanted != "auto":
        return wanted
    if device is None:
        return "auto"
    return cuda_auto_precision() if is_cuda(device) else "float32"


def cuda_auto_precision() -> str:
    """'bfloat16' when this process's GPU supports it (compute capability 8.0+), else 'float16'."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bfloat16"
    return "float16"


def check_finite(vectors: np.ndarray, embedder: str, precision: str | None = None) -> None:
    """Raise ``EmbedderError`` when ``vectors`` hold NaN or infinity (never store them)."""
    finite = np.isfinite(vectors)
    if finite.all():
        return
    rows = int((~finite.all(axis=tuple(range(1, vectors.ndim)))).sum()) if vectors.ndim > 1 else -1
    used = f" in {precision}" if precision else ""
    raise EmbedderError(
        f"embedders[{embedder}]: {rows} of {len(vectors)} vectors are not finite (NaN or "
        f"infinity){used}, so nothing was stored; fix: set embedders[{embedder}].precision to "
        f"bfloat16 or float32 (float16 overflows in large models), or check the model's weights"
    )


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Divide the rows of ``x`` by their L2 norms in place (all-zero rows stay zero); returns x."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, np.finfo(np.float32).tiny, out=norms)
    x /= norms
    return x


def finish(x: np.ndarray, normalize: bool) -> np.ndarray:
    """A float32 C-contiguous copy of ``x``, L2-normalised row-wise when asked."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    if normalize:
        l2_normalize(out)
    return out
