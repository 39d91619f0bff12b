"""The ``tfidf-svd`` kind: TF-IDF of word 1-2-grams reduced by truncated SVD, fitted on the pool."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from workers.embedders.base import EmbedderKind, ResolvedModel, finish

if TYPE_CHECKING:
    from workers.specs import EmbedderSpec

log = logging.getLogger(__name__)


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
        return finish(reduced, self.normalize)


class TfidfSvdKind(EmbedderKind):
    """Any ``dim`` (SVD components; capped to what the pool allows when fitting)."""

    name = "tfidf-svd"

    def load(self, spec: EmbedderSpec, resolved: ResolvedModel, device: str) -> TfidfSvdEmbedder:
        assert resolved.dim is not None  # a built-in: spec.dim or the built-in's default
        return TfidfSvdEmbedder(resolved.dim, spec.normalize, resolved)
