"""Badge (Ash, Zhang, Krishnamurthy, Langford and Agarwal 2020, "Deep Batch Active Learning by
Diverse, Uncertain Gradient Lower Bounds", ICLR; reference code github.com/JordanAsh/badge).

Each unlabelled row is represented by the gradient of the cross-entropy loss with respect to
the last linear layer, taking the model's own prediction as the label:
``g_i = (p_i - e_{yhat_i}) (x) x_i`` (a C*D vector; here the "last layer" is the learner's
linear head on the frozen embeddings, so ``x_i`` is the embedding). k-means++ seeding (D^2
sampling) on these vectors picks a batch that is both uncertain (long gradients) and diverse.

The C*D gradient vectors are never built: with ``a = p - e_yhat``,
``||g_i - g_j||^2 = ||a_i||^2 ||x_i||^2 + ||a_j||^2 ||x_j||^2 - 2 (a_i . a_j)(x_i . x_j)``,
so each new centre costs two matrix-vector products, O(N (C + D)), and a running minimum of
the squared distance to the chosen centres is kept in one N-vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from strategies import kernels
from strategies.base import Need, QueryContext, QueryStrategy
from strategies.kernels import PoolProducts
from strategies.registry import register_query_strategy
from strategies.ties import argmax_random_ties


def gradient_factors(probabilities: np.ndarray) -> np.ndarray:
    """(N, C) float32 ``a = p - onehot(argmax p)``; the gradient embedding is ``a (x) x``.

    Equal top probabilities resolve to the lowest class index (``np.argmax``), as in the
    reference code.
    """
    a = np.array(probabilities, dtype=np.float32, copy=True)
    yhat = np.argmax(a, axis=1)
    a[np.arange(a.shape[0]), yhat] -= 1.0
    return a


def sample_proportional(weights: np.ndarray, rng: np.random.Generator) -> int | None:
    """One position drawn with probability ``weights / weights.sum()`` (weights >= 0), or None
    when every weight is 0. Consumes exactly one ``rng.random()`` when it returns a position.

    Inverse-CDF on a float64 cumulative sum: a position of weight 0 can never be drawn.
    """
    cumulative = np.cumsum(weights, dtype=np.float64)
    total = cumulative[-1]
    if not total > 0:
        return None
    pos = int(np.searchsorted(cumulative, rng.random() * total, side="right"))
    if pos >= weights.shape[0]:  # u rounded up to the total: take the last positive weight
        pos = int(np.flatnonzero(weights > 0)[-1])
    return pos


def badge_seeding(
    x: PoolProducts,
    a: PoolProducts,
    candidates: np.ndarray,
    n: int,
    rng: np.random.Generator,
    first: Literal["max_norm", "sample"] = "max_norm",
) -> np.ndarray:
    """k-means++ seeding of ``n`` gradient embeddings ``a_i (x) x_i`` among ``candidates``.

    ``x``: products on the (N, D) embeddings; ``a``: products on the (N, C) factors
    ``p - e_yhat``; ``candidates``: (N,) bool, the rows that may be picked. Returns (n,) int64
    positions in pick order. See ``Badge`` for the rules.
    """
    grad_sq = (a.sq_norms * x.sq_norms).astype(np.float32)  # ||g_i||^2
    eligible = candidates.copy()
    chosen = np.empty(n, dtype=np.int64)

    if first == "max_norm":
        chosen[0] = argmax_random_ties(np.where(eligible, grad_sq, -1.0), rng)
    else:
        pos = sample_proportional(np.where(eligible, grad_sq, 0.0), rng)
        chosen[0] = pos if pos is not None else rng.choice(np.flatnonzero(eligible))
    eligible[chosen[0]] = False

    # Running min squared distance to the chosen centres; 0 where a row may not be picked.
    min_sq = np.zeros(x.n_rows, dtype=np.float32)
    for k in range(1, n):
        c = int(chosen[k - 1])
        d = x.dot_row(c)
        d *= a.dot_row(c)
        d *= -2.0
        d += grad_sq
        d += grad_sq[c]
        np.maximum(d, 0.0, out=d)
        if k == 1:
            min_sq = np.where(eligible, d, np.float32(0.0))
        else:
            np.minimum(min_sq, d, out=min_sq)
        min_sq[c] = 0.0
        pos = sample_proportional(min_sq, rng)
        if pos is None:  # every remaining row coincides with a centre: uniform over the rest
            chosen[k:] = rng.choice(np.flatnonzero(eligible), size=n - k, replace=False)
            return chosen
        chosen[k] = pos
        eligible[pos] = False
    return chosen


@register_query_strategy("badge")
@dataclass(frozen=True)
class Badge(QueryStrategy):
    """k-means++ seeding on the last-layer gradient embeddings of the unlabelled rows.

    ``g_i = (p_i - e_{yhat_i}) (x) x_i`` with ``yhat_i = argmax p_i`` (lowest class on ties).
    The first centre per ``first``; each next one is drawn with probability proportional to
    its squared distance to the nearest centre chosen so far (D^2 sampling, as the reference
    code: ``pairwise_distances(...) ** 2`` normalised), by inverse CDF on one
    ``rng.random()`` per pick. Labelled and already chosen rows have weight 0, so no row is
    picked twice.

    Parameters
    ----------
    first: "max_norm" (default) takes the row with the longest gradient, as the reference code
        ``init_centers`` does (``argmax`` of the norms; exact ties broken by the rng).
        "sample" draws it with probability proportional to ``||g_i||^2``, i.e. D^2 sampling
        with the origin as a provisional centre that is dropped afterwards (plain k-means++
        would draw it uniformly, ignoring uncertainty). Uniform if every norm is 0.

    Choices the paper leaves open, made here:
    - When every remaining squared distance is 0 (all rows left coincide with a centre, e.g.
      confident one-hot predictions give ``g = 0``), the rest of the batch is drawn uniformly
      without replacement from the unlabelled rows not yet chosen; the reference code would
      loop forever re-drawing already chosen rows.
    - Computation in float32; the squared-distance identity above may round a true 0 to a
      tiny positive value, which only makes such a row drawable with negligible probability.

    Cost per pick: two matrix-vector products (N x D and N x C), in torch when the context
    names a visible CUDA device (``strategies.kernels.kernel_device``), else numpy; memory
    O(N C) for ``a`` besides the pool.
    """

    first: Literal["max_norm", "sample"] = "max_norm"

    needs = frozenset({Need.PROBABILITIES})

    def _select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        device = kernels.kernel_device(context.device)
        x = PoolProducts(context.embeddings, device)
        a = PoolProducts(gradient_factors(context.probabilities), device)
        return badge_seeding(x, a, ~context.labelled, n, rng, self.first)
