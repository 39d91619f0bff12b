"""Shared kernels: top-k by score with ties broken by the trajectory's rng."""

from __future__ import annotations

import numpy as np


def top_k_random_ties(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` largest ``scores``, best first; equal scores ordered by ``rng``.

    O(N) selection (argpartition) on a random permutation, so which of several tied rows wins
    depends on the rng, never on their index order.
    """
    scores = np.asarray(scores)
    if not 0 < k <= scores.shape[0]:
        raise ValueError(f"k must lie in [1, {scores.shape[0]}], got {k}")
    shuffle = rng.permutation(scores.shape[0])
    shuffled = scores[shuffle]
    if k < shuffled.shape[0]:
        part = np.argpartition(-shuffled, k - 1)[:k]
    else:
        part = np.arange(shuffled.shape[0])
    order = part[np.argsort(-shuffled[part], kind="stable")]
    return shuffle[order]
