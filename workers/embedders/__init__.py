"""Frozen text embedders: built-ins shipped in registry packages, and any sentence-transformers model.

``EmbedderSpec.model`` is a built-in name (``BUILTIN_EMBEDDERS``), a local sentence-transformers
folder or a hub id ``org/model`` (``workers.embedders.resolve``). ``resolve_model`` is cheap (no
model is loaded) and gives ``identity``, the stable string the embedding store addresses vectors
by. ``load_embedder`` builds the ``Embedder`` itself; heavy modules (torch,
sentence-transformers, scikit-learn) are imported only there.

Layout: ``base`` (the ``Embedder`` protocol, ``ResolvedModel``, the kind registry ``KINDS`` and
helpers), ``builtins`` (the built-in table), ``resolve`` (names, folders, hub ids, identities),
and one module per kind with its encoder (``tfidf_svd``, ``glove``, ``sbert``). Every module of
this package is imported here, so a new kind's module registers itself.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from workers.embedders.base import (
    KINDS,
    Embedder,
    EmbedderError,
    EmbedderKind,
    ResolvedModel,
    is_cuda,
)
from workers.embedders.builtins import BUILTIN_EMBEDDERS, BuiltinEmbedderInfo
from workers.embedders.resolve import folder_digest, kind_of, resolve_model

if TYPE_CHECKING:
    from workers.specs import EmbedderSpec

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def load_embedder(spec: EmbedderSpec, device: str) -> Embedder:
    """Build the embedder of ``spec`` on ``device`` ('cpu' or 'cuda'/'cuda:N').

    Resolves the spec again here (paths are those of this machine). torch's thread count is
    left to the caller.
    """
    if not (device == "cpu" or is_cuda(device)):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    resolved = resolve_model(spec, device=device)
    return kind_of(resolved).load(spec, resolved, device)


__all__ = [
    "BUILTIN_EMBEDDERS",
    "KINDS",
    "BuiltinEmbedderInfo",
    "Embedder",
    "EmbedderError",
    "EmbedderKind",
    "ResolvedModel",
    "folder_digest",
    "load_embedder",
    "resolve_model",
]
