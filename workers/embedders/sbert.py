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
        self.precision = "float32"
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
        # float16/bfloat16 models: cast, and renormalise in float32 for exact unit norms.
        if hasattr(emb, "float"):  # a tensor (numpy has no bfloat16)
            emb = emb.float().cpu().numpy()
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
        settings = {
            "dim": dim,
            "max_seq_length": spec.max_seq_length,
            "normalize": spec.normalize,
            "precision": effective_precision(spec, device),
            "query_prompt": spec.prompt,
            "store_dtype": spec.store_dtype,
        }
        # Newer settings enter only when set, so the identities (store and trial keys) of
        # configs that do not use them stay what they were.
        extras = {
            "prompt_name": spec.prompt_name,
            "pooling": spec.pooling,
            "padding_side": spec.padding_side,
            "attn_implementation": spec.model_kwargs.attn_implementation,
        }
        settings.update({k: v for k, v in extras.items() if v is not None})
        if spec.trust_remote_code:
            settings["trust_remote_code"] = True
        return settings

    def load(
        self, spec: EmbedderSpec, resolved: ResolvedModel, device: str
    ) -> SentenceTransformerEmbedder:
        precision = effective_precision(spec, device)
        if precision == "float16" and not is_cuda(device):
            log.warning("%s: precision float16 on CPU is slow; float32 is the CPU default", spec.name)
        model = _load_model(spec, resolved, device, precision)
        if spec.pooling is not None:
            _set_pooling(spec, resolved, model)
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
        prompt = spec.prompt
        if spec.prompt_name is not None:
            prompts = dict(getattr(model, "prompts", None) or {})
            if spec.prompt_name not in prompts:
                raise reject(spec, "prompt_name", f"{spec.model!r} defines the prompts "
                             f"{sorted(prompts) or 'none'}", "give one of them, or an instruction")
            prompt = prompts[spec.prompt_name]
        embedder = SentenceTransformerEmbedder(
            model,
            batch_size=spec.batch_size,
            normalize=spec.normalize,
            prompt=prompt,
            resolved=resolved,
        )
        embedder.precision = precision
        return embedder


TORCH_DTYPES = ("float32", "float16", "bfloat16")


def _load_model(spec: EmbedderSpec, resolved: ResolvedModel, device: str, precision: str = "float32"):
    """The ``SentenceTransformer`` of ``resolved`` on ``device``; errors say where it was sought."""
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EmbedderError(
            f"{field_name(spec, 'model')}: {spec.model!r} needs sentence-transformers, which is not "
            f"installed; fix: pip install sentence-transformers"
        ) from None
    model_kwargs: dict = {"dtype": getattr(torch, precision if precision in TORCH_DTYPES else "float32")}
    if spec.model_kwargs.attn_implementation is not None:
        model_kwargs["attn_implementation"] = spec.model_kwargs.attn_implementation
    processor_kwargs = {"padding_side": spec.padding_side} if spec.padding_side else None
    if spec.trust_remote_code:
        log.warning("%s: trust_remote_code is on: loading %r runs Python code from the model's "
                    "repository", spec.name, spec.model)
    try:
        return SentenceTransformer(resolved.location, device=device, revision=resolved.revision,
                                   trust_remote_code=spec.trust_remote_code,
                                   model_kwargs=model_kwargs, processor_kwargs=processor_kwargs)
    except Exception as exc:
        if not spec.trust_remote_code and "trust_remote_code" in str(exc):
            raise reject(spec, "trust_remote_code",
                         f"{spec.model!r} needs the Python code of its repository, which albench "
                         f"does not run unless asked ({type(exc).__name__})",
                         "set trust_remote_code: true for this embedder if you trust that code "
                         "(it is recorded in the store metadata)") from exc
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


def _folder_pooling(resolved: ResolvedModel) -> str | tuple | None:
    """The pooling mode the model's own modules.json defines; None when it defines none."""
    import json
    from pathlib import Path

    if resolved.origin == "hub":
        try:
            from huggingface_hub import hf_hub_download

            root = Path(hf_hub_download(resolved.location, "modules.json",
                                        revision=resolved.revision)).parent
        except Exception:  # noqa: BLE001 (not found, offline, gated: the model defines none we can see)
            return None
    else:
        root = Path(resolved.location)
    modules = root / "modules.json"
    if not modules.is_file():
        return None
    for module in json.loads(modules.read_text()):
        if module.get("type", "").endswith("Pooling"):
            config = root / module.get("path", "") / "config.json"
            if not config.is_file():
                return "mean"
            data = json.loads(config.read_text())
            if "pooling_mode" in data:
                return data["pooling_mode"]
            for mode in ("cls", "lasttoken", "mean"):  # legacy pooling_mode_<x>_token flags
                if data.get(f"pooling_mode_{mode}_token") or data.get(f"pooling_mode_{mode}"):
                    return mode
            return "mean"
    return None


def _set_pooling(spec: EmbedderSpec, resolved: ResolvedModel, model) -> None:
    """Use ``spec.pooling`` where the folder defines no pooling; reject a contradicting one."""
    own = _folder_pooling(resolved)
    if own is not None:
        if own != spec.pooling:
            raise reject(spec, "pooling", f"{spec.model!r} defines its own pooling {own!r}",
                         f"remove pooling or set it to {own!r}")
        return
    from sentence_transformers.sentence_transformer.modules import Pooling

    for index, module in enumerate(model):
        if isinstance(module, Pooling):
            model._modules[str(index)] = Pooling(module.embedding_dimension, pooling_mode=spec.pooling)
            return
    raise reject(spec, "pooling", f"{spec.model!r} has no pooling module to set", "remove pooling")


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
