"""The ``sentence-transformers`` kind: any sentence-transformers model (hub id, local folder, or
a built-in's package folder). It also serves every local folder and hub id (``MODEL_KIND``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from workers.embedders.base import (
    EmbedderError,
    EmbedderKind,
    ResolvedModel,
    effective_precision,
    field_name,
    finish,
    is_cuda,
    reject,
)

if TYPE_CHECKING:
    from workers.embedders.builtins import BuiltinEmbedderInfo
    from workers.specs import EmbedderSpec

log = logging.getLogger(__name__)


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
        return finish(np.asarray(emb), self.normalize)


class SentenceTransformersKind(EmbedderKind):
    """Tokens limit, prompt and compute precision enter the identity; ``dim`` truncates."""

    name = "sentence-transformers"
    takes_prompt = True

    def check_builtin(self, spec: EmbedderSpec, name: str, info: BuiltinEmbedderInfo) -> None:
        if spec.dim is not None and spec.dim > info.dim:
            raise reject(
                spec,
                "dim",
                f"built-in {name!r} has {info.dim} dimensions; dim keeps the first dim components",
                f"set dim <= {info.dim} or remove it",
            )

    def identity_settings(self, spec: EmbedderSpec, dim: int | None, device: str | None) -> dict:
        return {
            "dim": dim,
            "max_seq_length": spec.max_seq_length,
            "normalize": spec.normalize,
            "precision": effective_precision(spec, device),
            "query_prompt": spec.query_prompt,
            "store_dtype": spec.store_dtype,
        }

    def load(
        self, spec: EmbedderSpec, resolved: ResolvedModel, device: str
    ) -> SentenceTransformerEmbedder:
        model = _load_model(spec, resolved, device)
        if spec.dim is not None:
            native = model.get_embedding_dimension()
            _at_most(spec, "dim", spec.dim, native, f"{spec.model!r} has {native} dimensions",
                     f"set dim <= {native} or remove it")
            if native is None or spec.dim < native:
                model.truncate_dim = spec.dim  # keep the first dim components (Matryoshka-style)
        if spec.max_seq_length is not None:
            limit = _position_limit(model)
            _at_most(spec, "max_seq_length", spec.max_seq_length, limit,
                     f"{spec.max_seq_length} exceeds the {limit} positions {spec.model!r} supports",
                     f"set max_seq_length <= {limit}")
            model.max_seq_length = spec.max_seq_length
        if effective_precision(spec, device) == "float16":
            if not is_cuda(device):
                log.warning("%s: precision float16 on CPU is slow; float32 is the CPU default", spec.name)
            model.half()
        return SentenceTransformerEmbedder(
            model,
            batch_size=spec.batch_size,
            normalize=spec.normalize,
            prompt=spec.query_prompt,
            resolved=resolved,
        )


def _load_model(spec: EmbedderSpec, resolved: ResolvedModel, device: str):
    """The ``SentenceTransformer`` of ``resolved`` on ``device``; errors say where it was sought."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EmbedderError(
            f"{field_name(spec, 'model')}: {spec.model!r} needs sentence-transformers, which is not "
            f"installed; fix: pip install sentence-transformers"
        ) from None
    try:
        return SentenceTransformer(resolved.location, device=device, revision=resolved.revision)
    except Exception as exc:
        where = (
            "the hub (is it reachable from this machine? with HF_HUB_OFFLINE=1 the model must be "
            "in the local Hugging Face cache)"
            if resolved.origin == "hub"
            else f"the folder {resolved.location!r}"
        )
        raise EmbedderError(
            f"{field_name(spec, 'model')}: could not load {spec.model!r} from {where}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _at_most(spec: EmbedderSpec, field: str, value: int, limit: int | None, why: str, fix: str) -> None:
    """Raise ``reject(spec, field, why, fix)`` when ``value`` exceeds a known ``limit``."""
    if limit is not None and value > limit:
        raise reject(spec, field, why, fix)


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
