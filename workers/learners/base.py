"""The learner contract: ``fit(labelled rows, validation) -> head`` over all C classes."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

UNSEEN_CLASS_BIAS = -1e4
"""Bias of classes with no labelled row yet: their probability is exactly 0."""


class PoolScaler:
    """Standardisation with the mean and std of the whole pool: statistics of the unlabelled
    embeddings, no label involved, fixed for the trajectory."""

    CHUNK_ROWS = 65536

    def __init__(self, pool: np.ndarray) -> None:
        total = np.zeros(pool.shape[1], dtype=np.float64)
        squares = np.zeros(pool.shape[1], dtype=np.float64)
        for start in range(0, pool.shape[0], self.CHUNK_ROWS):  # fixed temporaries at any N
            chunk = np.asarray(pool[start : start + self.CHUNK_ROWS], dtype=np.float64)
            total += chunk.sum(axis=0)
            squares += np.square(chunk).sum(axis=0)
        mean = total / pool.shape[0]
        std = np.sqrt(np.maximum(squares / pool.shape[0] - mean**2, 0.0))
        self.mean = mean.astype(np.float32)
        self.scale = np.where(std > 1e-6, std, 1.0).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale


class Learner(ABC):
    """Fits a head on the labelled rows; strategies and evaluation read the head. Its spec
    (``workers.specs.LearnerKind``) builds it."""

    def __init__(self, spec, n_classes: int, pool: np.ndarray, seed: int) -> None:
        self.spec = spec
        self.n_classes = n_classes
        self.seed = seed
        self.pool = pool
        self.scaler = PoolScaler(pool) if spec.standardized else None

    @abstractmethod
    def fit(self, features: np.ndarray, labels: np.ndarray,
            validation: tuple[np.ndarray, np.ndarray] | None = None):
        """A head over all ``n_classes`` (``logits(x)``, ``predict_proba(x)`` on raw features).

        ``validation``: labelled rows for model selection only (never trained on)."""

    def fit_info(self) -> dict[str, float]:
        """What the last ``fit`` chose, as per-cycle metrics (``learner_*``); none by default."""
        return {}

    def resume(self, features: np.ndarray, labels: np.ndarray, order: list[int], sizes: list[int],
               validation: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Restore what the learner carried across the cycles so far (``order``: the labelling
        order; ``sizes``: labelled rows per cycle), as an uninterrupted trajectory would have
        it. Learners that carry nothing between fits keep this no-op."""


def make_learner(spec, n_classes: int, pool: np.ndarray, seed: int) -> Learner:
    """The learner of ``spec`` for one trajectory over ``pool`` (its embeddings), seeded."""
    return spec.build(n_classes, pool, seed)
