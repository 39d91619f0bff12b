"""DropQuery (Gupte, Aklilu, Nirschl and Yeung-Levy 2024, "Revisiting Active Learning in the Era
of Vision Foundation Models", TMLR; reference code github.com/sanketx/AL-foundation-models,
``ALFM/src/query_strategies/dropout.py``).

Uncertainty from dropout on the frozen features, diversity from k-means: rows whose predicted
class changes under most of a few dropout masks are candidates; the batch is the candidate
nearest each of B k-means centres of the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from annotated_types import Ge, Gt, Lt

from strategies.base import Need, QueryContext, QueryStrategy
from strategies.chunks import DEFAULT_CHUNK_ROWS, row_chunks
from strategies.clustering import cluster_representatives
from strategies.registry import register_query_strategy

MASK_LEVELS = 1 << 16
"""Dropout masks compare uniform 16-bit integers with a threshold: the rate is resolved to
1/65536 (exact for 0.75), at under half the cost of float draws."""


def dropout_masks(rng: np.random.Generator, shape: tuple[int, int], drop_rate: float) -> np.ndarray:
    """Boolean keep-mask of ``shape``: each entry kept with probability ``1 - drop_rate``.

    Successive calls on one generator with an even number of entries each continue one
    stream, so masks drawn by row chunks equal the mask drawn for all rows at once.
    """
    threshold = round(drop_rate * MASK_LEVELS)
    return rng.integers(0, MASK_LEVELS, size=shape, dtype=np.uint16) >= threshold


def dropout_disagreements(
    context: QueryContext,
    rows: np.ndarray,
    n_drops: int,
    drop_rate: float,
    rng: np.random.Generator,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> np.ndarray:
    """(len(rows),) how many of ``n_drops`` dropout predictions differ from the plain prediction.

    The plain prediction is the argmax of the learner's probabilities; a dropout prediction is
    the argmax of the head's logits on ``x * mask / (1 - drop_rate)`` (inverted dropout, as
    ``torch.nn.Dropout``). Run ``m`` draws its masks from the ``m``-th child of ``rng.spawn``,
    row chunk after row chunk.
    """
    x = context.embeddings
    head = context.head
    weights_t = np.ascontiguousarray(head.weights.T, dtype=np.float32)
    scale = np.float32(1.0 / (1.0 - drop_rate))
    plain = np.argmax(context.probabilities[rows], axis=1)
    runs = rng.spawn(n_drops)
    changes = np.zeros(rows.size, dtype=np.int64)
    d = x.shape[1]
    chunk_rows += chunk_rows % 2  # even chunks keep each run's mask stream chunk-independent
    dropped_buffer = np.empty((min(chunk_rows, rows.size), d), dtype=np.float32)
    for part in row_chunks(rows.size, chunk_rows):
        features = x[rows[part]]
        dropped = dropped_buffer[: features.shape[0]]  # reused: no fresh pages per run
        for run in runs:
            np.multiply(features, dropout_masks(run, (features.shape[0], d), drop_rate), out=dropped)
            logits = dropped @ weights_t
            logits *= scale
            logits += head.bias
            changes[part] += np.argmax(logits, axis=1) != plain[part]
    return changes


@register_query_strategy("dropquery")
@dataclass(frozen=True)
class DropQuery(QueryStrategy):
    """Candidates whose prediction changes under most dropout masks, one per k-means cluster.

    1. For every unlabelled row, ``n_drops`` predictions of the linear head on the features
       with dropout (rate ``drop_rate``, kept entries rescaled by ``1 / (1 - drop_rate)``).
    2. Candidates: rows whose dropout prediction differs from the plain prediction in more than
       half of the runs (``changes > n_drops // 2``, as the reference code).
    3. More than B candidates: k-means of their embeddings into B clusters (see
       ``strategies.clustering``), the candidate nearest each centre. Otherwise all candidates,
       then random unlabelled non-candidates up to B.

    Parameters (defaults from the paper and its reference code)
    ----------
    n_drops: 3, dropout runs (the paper's M = 3; scikit-activeml defaults to 5).
    drop_rate: 0.75, the reference configuration's ``dropout_p``.

    Choices the paper leaves open, made here:
    - Dropout acts on the frozen embeddings fed to the linear head. The reference classifier
      also batch-normalises the features after dropout; the head here has no such layer.
    - With at most B candidates the reference code cannot run (k-means needs more points than
      clusters); the batch is then filled uniformly at random, as the paper describes.
    - Clustering is on the raw embeddings (the reference clusters the head's input features).
    """

    n_drops: Annotated[int, Ge(1)] = 3
    drop_rate: Annotated[float, Gt(0.0), Lt(1.0)] = 0.75

    needs = frozenset({Need.PROBABILITIES, Need.HEAD})

    def _select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        unlabelled = context.unlabelled_indices()
        changes = dropout_disagreements(context, unlabelled, self.n_drops, self.drop_rate, rng)
        is_candidate = changes > self.n_drops // 2
        candidates = unlabelled[is_candidate]
        return cluster_representatives(
            context.embeddings[candidates], candidates, unlabelled[~is_candidate], n, rng
        )
