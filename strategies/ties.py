"""Tie-breaking: every choice among equal values is made by the trajectory's rng, here only.

Two ways of breaking ties, which draw differently from the rng and are kept as they are (the
strategies' selections, and every later draw of a trajectory, depend on them):

- ``top_k_random_ties`` and ``argmin_random_ties`` *shuffle first*: one ``rng.permutation``
  of all positions, always drawn, then a deterministic choice on the shuffled values (the
  winner among equals is then the one the permutation puts first, or the one
  ``np.argpartition`` keeps). ``argmin_random_ties`` also counts values within ``TIE_RTOL``
  of the smallest as equal.
- ``argmax_random_ties`` *draws only on a tie*: one ``rng.integers`` when several positions
  hold exactly the largest value, nothing otherwise, so a greedy loop with no ties (Badge,
  Coreset, ProbCover pick once per batch row) consumes nothing from the rng.
"""

from __future__ import annotations

import numpy as np

TIE_RTOL = 1e-5
"""Distances within this relative tolerance of the smallest count as ties, broken by the rng
(``argmin_random_ties``, ``strategies.clustering.nearest_to_centres``). Exact ties are common
there (the two members of a two-point cluster are equally far from its centre; mutual nearest
neighbours are equally far from each other), and float32 rounding would otherwise break them
by memory layout rather than by the trajectory's rng."""


def _shuffled(values: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(order, values[order]) for one ``rng.permutation`` of the positions of ``values``."""
    order = rng.permutation(values.shape[0])
    return order, values[order]


def top_k_random_ties(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` largest ``scores``, best first; equal scores ordered by ``rng``.

    O(N) selection (argpartition) on a random permutation, so which of several tied rows wins
    depends on the rng, never on their index order. Draws one permutation of N.
    """
    scores = np.asarray(scores)
    if not 0 < k <= scores.shape[0]:
        raise ValueError(f"k must lie in [1, {scores.shape[0]}], got {k}")
    shuffle, shuffled = _shuffled(scores, rng)
    if k < shuffled.shape[0]:
        part = np.argpartition(-shuffled, k - 1)[:k]
    else:
        part = np.arange(shuffled.shape[0])
    order = part[np.argsort(-shuffled[part], kind="stable")]
    return shuffle[order]


def argmin_random_ties(values: np.ndarray, rng: np.random.Generator) -> int:
    """Position of the smallest of ``values`` (>= 0); values within ``TIE_RTOL`` of it are ties,
    the first of them in one ``rng.permutation`` wins. Draws one permutation of N."""
    order, shuffled = _shuffled(values, rng)
    near = shuffled <= values.min() * (1 + TIE_RTOL)
    return int(order[np.argmax(near)])


def argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> int:
    """Position of the largest of ``values``; exact ties broken uniformly by ``rng``.

    Draws from ``rng`` only when there is a tie (so a tie-free run consumes nothing).
    """
    top = values.max()
    ties = np.flatnonzero(values == top)
    if ties.size == 1:
        return int(ties[0])
    return int(ties[rng.integers(ties.size)])
