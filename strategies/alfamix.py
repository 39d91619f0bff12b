"""AlfaMix (Parvaneh, Abbasnejad, Teney, Haffari, van den Hengel and Shi 2022, "Active Learning
by Feature Mixing", CVPR; reference code github.com/AminParvaneh/alpha_mix_active_learning,
``query_strategies/alpha_mix_sampling.py``).

An unlabelled embedding ``z`` is mixed towards each class anchor ``z*`` (the mean embedding of
the labelled rows of that class): ``z~ = (1 - alpha) z + alpha z*``, with ``alpha`` a vector
(one coefficient per dimension). If the head's prediction for some mix differs from its
prediction for ``z``, the row is a candidate; the batch is the candidate nearest each of B
k-means centres of the (L2-normalised) candidates.

The optimal alpha, for a linear head
------------------------------------
The paper picks the alpha that most increases the loss of the predicted label ``y*``, within
``||alpha|| <= eps``, to first order (its closed-form approximation):

    alpha* = eps * ||z* - z|| / ||g|| * g / (z* - z)        (elementwise division)

with ``g = grad_z CE(head(z), y*)`` and ``eps = alpha_cap / sqrt(D)`` (the reference code's
scaling of the cap). The mix is then

    z~ = z + alpha* * (z* - z) = z + eps * ||z* - z|| * g / ||g||,

a step along the loss gradient whose length is ``eps`` times the distance to the anchor. This
module uses the right-hand form, which equals the paper's but never divides by ``z* - z``
(the reference code adds 1e-8 to avoid dividing by zero). For a linear head
``g = W^T (p - e_y*)`` and the mix's logits are ``logits(z) + s * W g / ||g||`` with
``s = eps * ||z* - z||``: the set of steps ``s >= 0`` that keep the prediction ``y*`` is an
interval containing 0, so some anchor flips the prediction exactly when the farthest anchor
does. One distance per anchor and one C-vector per row suffice: O(N (A + C) D) in all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from annotated_types import Gt, Le

from strategies.base import Need, QueryContext, QueryStrategy
from strategies.chunks import DEFAULT_CHUNK_ROWS, row_chunks
from strategies.clustering import cluster_representatives
from strategies.kernels import squared_distances, squared_norms
from strategies.registry import register_query_strategy


def class_anchors(context: QueryContext) -> np.ndarray:
    """(A, D) float32 mean embedding of the labelled rows of each class that has any."""
    rows = context.labelled_indices()
    labels = context.labels[rows]
    counts = np.bincount(labels, minlength=context.n_classes)
    sums = np.zeros((context.n_classes, context.embeddings.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, context.embeddings[rows])
    seen = counts > 0
    return (sums[seen] / counts[seen, None]).astype(np.float32)


def alpha_caps(alpha_cap: float, grow: bool) -> list[float]:
    """The caps tried in turn: ``alpha_cap`` alone, or ``alpha_cap, 2 alpha_cap, ...`` up to the
    first one >= 1 (the reference code's loop)."""
    if not grow:
        return [alpha_cap]
    steps = math.ceil(1.0 / alpha_cap - 1e-9)
    return [alpha_cap * (i + 1) for i in range(steps)]


def loss_ascent_logits(logits: np.ndarray, gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class ``y*`` and ``W g / ||g||`` (r, C), with ``g = grad_z CE(softmax(W z + b), y*)``.

    ``g = W^T (p - e_y*)``; ``p - e_y*`` is computed up to a positive factor as ``v`` with
    ``v_c = exp(l_c - l_2)`` off ``y*`` (``l_2`` the runner-up logit) and ``v_y* = -sum v_c``,
    so the direction stays defined where float32 probabilities saturate to one-hot. With
    ``gram = W W^T`` (C, C), ``W g = gram v`` and ``||g||^2 = v . gram v``: O(r C^2), where
    forming ``g`` (r, D) and ``W g`` would cost two products of O(r C D). Rows whose ``g`` is
    zero get a zero direction (they never flip).
    """
    rows = np.arange(logits.shape[0])
    pred = np.argmax(logits, axis=1)
    others = logits.copy()
    others[rows, pred] = -np.inf
    runner_up = others.max(axis=1, keepdims=True)
    v = np.exp(others - runner_up)
    v[rows, pred] = -v.sum(axis=1)
    direction = v @ gram  # (r, C): W g up to the same positive factor (gram is symmetric)
    norm = np.sqrt(np.maximum(np.einsum("ij,ij->i", direction, v, dtype=np.float64), 0.0)).astype(np.float32)
    direction /= np.where(norm > 0, norm, np.inf)[:, None]
    return pred, direction


def first_flipping_cap(
    context: QueryContext, rows: np.ndarray, caps: list[float], chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> np.ndarray:
    """(len(rows),) index of the first cap under which a mix flips the row's prediction;
    ``len(caps)`` where none does (or where the head has fewer than two classes)."""
    x = context.embeddings
    head = context.head
    first = np.full(rows.size, len(caps), dtype=np.int64)
    if head.n_classes < 2:
        return first
    weights = head.weights.astype(np.float64)
    gram = (weights @ weights.T).astype(np.float32)  # W W^T, (C, C)
    anchors = class_anchors(context)
    anchor_sq = squared_norms(anchors)
    eps = np.asarray(caps, dtype=np.float32) / np.float32(math.sqrt(x.shape[1]))
    for part in row_chunks(rows.size, chunk_rows):
        z = x[rows[part]]
        logits = head.logits(z).astype(np.float32, copy=False)
        pred, direction = loss_ascent_logits(logits, gram)
        reach = np.sqrt(squared_distances(z, anchors, None, anchor_sq).max(axis=1))
        for i in range(len(caps) - 1, -1, -1):  # last to first: the first flip is kept
            mixed = logits + (eps[i] * reach)[:, None] * direction
            first[part][np.argmax(mixed, axis=1) != pred] = i
    return first


@register_query_strategy("alfamix")
@dataclass(frozen=True)
class AlfaMix(QueryStrategy):
    """Candidates whose prediction a bounded mix towards a class anchor flips, one per cluster.

    1. Anchors: the mean embedding of the labelled rows of every class that has one (classes
       without labelled rows have no anchor; the reference code gives them the mean of all
       labelled rows).
    2. For every unlabelled row and anchor, the paper's closed-form optimal mixing vector
       (module docstring) under the cap ``eps = cap / sqrt(D)``; the row is a candidate if the
       head's prediction for any mix differs from its prediction ``y*``.
    3. With ``grow_cap``, the caps ``alpha_cap, 2 alpha_cap, ...`` are tried in turn, up to
       the first cap >= 1, stopping at the first with more than B candidates (the reference
       code's loop; candidates only grow with the cap).
    4. More than B candidates: k-means of their L2-normalised embeddings into B clusters, the
       candidate nearest each centre. Otherwise all candidates, then random unlabelled rows.

    Parameters (defaults from the reference code's documented command line)
    ----------
    alpha_cap: 0.2, the bound on the mixing coefficients (``--alpha_cap 0.2``).
    grow_cap: True, raise the cap while there are at most B candidates.
    normalize: True, cluster the candidates' L2-normalised embeddings (as the reference code).

    Choices the paper leaves open, made here:
    - The closed form rather than the optional gradient-descent search for alpha
      (``--alpha_closed_form_approx``); the head's input is the embedding itself (the
      "feature" that is mixed).
    - y* and the gradient come from the head's logits, not from the probabilities: the
      gradient's direction is computed stably where float32 probabilities are one-hot (the
      reference code's gradient is then 0 and its alpha NaN). So the probabilities are not
      needed.
    - Missing picks are drawn without replacement (the reference code draws with
      replacement, which can repeat a row).
    """

    alpha_cap: Annotated[float, Gt(0.0), Le(1.0)] = 0.2
    grow_cap: bool = True
    normalize: bool = True

    needs = frozenset({Need.HEAD, Need.LABELS})

    def _select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        unlabelled = context.unlabelled_indices()
        caps = alpha_caps(self.alpha_cap, self.grow_cap)
        first = first_flipping_cap(context, unlabelled, caps)
        per_cap = np.cumsum(np.bincount(first, minlength=len(caps) + 1)[: len(caps)])
        enough = np.flatnonzero(per_cap > n)
        last_cap = int(enough[0]) if enough.size else len(caps) - 1
        is_candidate = first <= last_cap
        candidates = unlabelled[is_candidate]
        features = context.embeddings[candidates]
        if self.normalize:
            norms = np.sqrt(np.einsum("ij,ij->i", features, features))
            features = features / np.maximum(norms, np.float32(1e-12))[:, None]
        return cluster_representatives(features, candidates, unlabelled[~is_candidate], n, rng)
