"""Uncertainty sampling on the learner's class probabilities (Lewis & Gale 1994; Settles 2009).

One template: a subclass only defines ``uncertainty(probabilities) -> scores`` (higher = more
uncertain); scores are computed on the unlabelled rows only and ties are broken by the rng.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import numpy as np

from strategies.base import Need, QueryContext, QueryStrategy
from strategies.registry import register_query_strategy
from strategies.ties import top_k_random_ties

SCORE_CHUNK_ROWS = 65536
"""Rows scored at a time: the temporaries stay a few MiB, whatever the pool's size."""


class UncertaintySampling(QueryStrategy):
    """Pick the ``n`` unlabelled rows with the highest uncertainty score."""

    needs = frozenset({Need.PROBABILITIES})

    @staticmethod
    @abstractmethod
    def uncertainty(probabilities: np.ndarray) -> np.ndarray:
        """(M, C) probabilities -> (M,) scores, higher means more uncertain."""

    def _select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        candidates = context.unlabelled_indices()
        if candidates.size == 0:
            return candidates
        scores = np.concatenate([
            self.uncertainty(context.probabilities[candidates[start : start + SCORE_CHUNK_ROWS]])
            for start in range(0, candidates.size, SCORE_CHUNK_ROWS)
        ])
        return candidates[top_k_random_ties(scores, n, rng)]


@register_query_strategy("margin")
@dataclass(frozen=True)
class MarginSampling(UncertaintySampling):
    """Smallest gap between the two most probable classes (Scheffer et al. 2001)."""

    @staticmethod
    def uncertainty(probabilities: np.ndarray) -> np.ndarray:
        if probabilities.shape[1] < 2:
            return np.zeros(probabilities.shape[0], dtype=probabilities.dtype)
        top2 = np.partition(probabilities, -2, axis=1)[:, -2:]
        return top2[:, 0] - top2[:, 1]  # = -(p1 - p2)


@register_query_strategy("entropy")
@dataclass(frozen=True)
class EntropySampling(UncertaintySampling):
    """Highest Shannon entropy of the predicted distribution."""

    @staticmethod
    def uncertainty(probabilities: np.ndarray) -> np.ndarray:
        p = probabilities.astype(np.float64, copy=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log(p), 0.0)
        return -terms.sum(axis=1)


@register_query_strategy("least_confidence")
@dataclass(frozen=True)
class LeastConfidenceSampling(UncertaintySampling):
    """Lowest probability of the predicted class."""

    @staticmethod
    def uncertainty(probabilities: np.ndarray) -> np.ndarray:
        return -probabilities.max(axis=1)
