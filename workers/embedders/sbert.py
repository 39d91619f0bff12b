"""The ``sentence-transformers`` kind: any sentence-transformers model (hub id, local folder, or
a built-in's package folder). It also serves every local folder and hub id (``MODEL_KIND``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Tokens:
    """Texts tokenized once: their lengths (tokens, prompt and special tokens included) and,
    where the model's inputs are plain tokenized text, their ids (else None)."""

    texts: list[str]
    lengths: np.ndarray
    ids: dict[str, list[list[int]]] | None


def _lengths(model, prompt: str | None, texts: list[str]) -> np.ndarray:
    """Tokens per text (prompt and special tokens included, truncated to the model's limit)."""
    limit = getattr(model, "max_seq_length", None) or 512
    ids = model.tokenizer([(prompt or "") + t for t in texts], add_special_tokens=True,
                          truncation=True, max_length=limit)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(texts))


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
        self._fast: bool | None = None  # tokenize once and pad per batch (checked on first use)
        self._extras: dict = {}  # the non-tensor features the model's preprocessing adds
        dim = model.get_embedding_dimension()
        if dim is None:  # unknown from the modules: measure it
            dim = int(
                np.asarray(model.encode(["dimension probe"], convert_to_numpy=True)).shape[-1]
            )
        self.dim = int(dim)

    def fit(self, pool_texts: list[str]) -> None:
        return None

    def tokenize(self, texts: list[str]) -> Tokens | None:
        """Tokenize ``texts`` once (prompt and special tokens included, truncated as the model
        truncates) for ``encode_tokens``: their lengths plan the batches and, where the model's
        own preprocessing is plain tokenization, their ids are padded per batch instead of being
        tokenized again. None when the model has no tokenizer."""
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None or not texts:
            return None
        if self._fast is None:
            self._fast = self._check_fast_path(texts[:8])
        if not self._fast:  # tokenized again per batch by SentenceTransformer.encode
            return Tokens(texts, _lengths(self.model, self.prompt, texts), None)
        ids = self._tokenize(texts)
        lengths = np.fromiter((len(x) for x in ids["input_ids"]), dtype=np.int64, count=len(texts))
        return Tokens(texts, lengths, ids)

    def encode_tokens(self, tokens: Tokens, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``tokens.texts[rows]`` in one batch: the same as ``encode`` of those
        texts with ``batch_size=len(rows)``, bit for bit (the same features, in the same order)."""
        if tokens.ids is None:
            batch_size = self.batch_size
            self.batch_size = len(rows)
            try:
                return self.encode([tokens.texts[i] for i in rows])
            finally:
                self.batch_size = batch_size
        import torch
        from sentence_transformers.util import batch_to_device

        # SentenceTransformer.encode orders a batch by characters, longest first: the same here.
        order = np.argsort([-len(tokens.texts[i]) for i in rows])
        picked = [int(rows[i]) for i in order]
        features = self._pad({k: [v[i] for i in picked] for k, v in tokens.ids.items()})
        self.model.eval()
        with torch.inference_mode():
            out = self.model(batch_to_device(features, self.model.device))["sentence_embedding"]
            if self.model.truncate_dim is not None:
                out = out[..., :self.model.truncate_dim]
            if self.normalize:
                out = torch.nn.functional.normalize(out, p=2, dim=1)
            out = out.cpu()
        if out.dtype == torch.bfloat16:
            out = out.float()
        emb = np.empty((len(rows), out.shape[1]), dtype=out.numpy().dtype)
        emb[order] = out.numpy()
        return finish(emb, self.normalize)

    def _text_kwargs(self) -> dict:
        first = self.model[0]
        own = getattr(first, "processing_kwargs", None)
        text = dict((own or {}).get("text") or {}) if isinstance(own, dict) else {}
        return {"truncation": "longest_first", **text}

    def _tokenize(self, texts: list[str]) -> dict[str, list[list[int]]]:
        kwargs = {k: v for k, v in self._text_kwargs().items()
                  if k not in ("padding", "pad_to_multiple_of", "return_tensors")}
        prompt = self.prompt or ""
        return dict(self.model.tokenizer([prompt + t for t in texts], padding=False, **kwargs))

    def _pad(self, ids: dict[str, list[list[int]]]) -> dict:
        multiple = self._text_kwargs().get("pad_to_multiple_of")
        features = dict(self.model.tokenizer.pad(ids, padding=True, pad_to_multiple_of=multiple,
                                                 return_tensors="pt"))
        return {**features, **self._extras}

    def _check_fast_path(self, sample: list[str]) -> bool:
        """Whether padding once-tokenized ids gives exactly the features the model's own
        preprocessing gives (a probe: the first texts and one longer than the model's limit);
        models with another input path (chat templates, flattened inputs, other modalities)
        keep ``SentenceTransformer.encode``."""
        import torch

        limit = getattr(self.model, "max_seq_length", None) or 512
        probe = list(sample) + ["probe " * min(int(limit) + 8, 4096)]
        try:
            if not hasattr(self.model[0], "processing_kwargs"):
                return False
            own = self.model.preprocess(probe, prompt=self.prompt)
            self._extras = {k: v for k, v in own.items() if not isinstance(v, torch.Tensor)}
            mine = self._pad(self._tokenize(probe))
        except Exception:  # any surprise: keep the model's own path
            log.debug("%s: tokenized once is not available", self.resolved, exc_info=True)
            return False
        return set(own) == set(mine) and all(
            torch.equal(v, mine[k]) and v.dtype == mine[k].dtype if isinstance(v, torch.Tensor)
            else v == mine[k] for k, v in own.items())

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
