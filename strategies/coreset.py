"""Coreset by k-center greedy (Sener and Savarese 2018, "Active Learning for Convolutional
Neural Networks: A Core-Set Approach", ICLR).

Repeatedly take the unlabelled row farthest from its nearest labelled-or-already-chosen row:
the greedy 2-approximation of the k-center problem the paper's bound asks to minimise. Works
with nothing labelled (the first centre is then drawn at random), so it is both a query
strategy and an initial pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from annotated_types import Ge

from strategies import distances
from strategies.base import QueryContext, QueryStrategy
from strategies.distances import DEFAULT_CHUNK_ROWS, PoolProducts, argmax_random_ties
from strategies.registry import register_initial_pool, register_query_strategy


def k_center_greedy(
    x: PoolProducts,
    labelled: np.ndarray,
    n: int,
    rng: np.random.Generator,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> np.ndarray:
    """(n,) int64 rows picked by k-center greedy, in pick order.

    ``x``: products on the (N, D) pool; ``labelled``: (N,) bool. The minimum squared distance
    to the labelled rows is computed once in ``chunk_rows`` blocks; each pick then costs one
    1 x N distance row and an elementwise minimum. Rows already labelled or chosen carry -1,
    so they are never picked; the farthest row wins, exact ties broken by the rng. With no
    labelled row the first pick is uniform over the pool.
    """
    labelled_rows = np.flatnonzero(labelled)
    chosen = np.empty(n, dtype=np.int64)
    start = 0
    if labelled_rows.size:
        min_sq = x.min_squared_distance_to_rows(labelled_rows, chunk_rows)
    else:
        chosen[0] = rng.integers(x.n_rows)
        min_sq = x.squared_distances_to_row(int(chosen[0]))
        start = 1
    min_sq[labelled] = -1.0
    if start:
        min_sq[chosen[0]] = -1.0
    for k in range(start, n):
        pick = argmax_random_ties(min_sq, rng)
        chosen[k] = pick
        if k + 1 < n:
            np.minimum(min_sq, x.squared_distances_to_row(pick), out=min_sq)
        min_sq[pick] = -1.0
    return chosen


@register_initial_pool("coreset")
@register_query_strategy("coreset")
@dataclass(frozen=True)
class Coreset(QueryStrategy):
    """k-center greedy on the embeddings (Euclidean distance), ``n`` picks.

    Each pick is the unlabelled, not yet chosen row whose distance to its nearest labelled or
    already chosen row is largest (exact ties broken by the rng). O((L + n) N D) time, O(N)
    extra memory beyond one ``chunk_rows x chunk_rows`` block.

    Parameters
    ----------
    chunk_rows: 8192, rows per block when computing distances to the labelled rows (a block
        is ``chunk_rows**2`` float32, 256 MiB at the default).

    Choices the paper leaves open, made here:
    - Cold start (no labelled row, as an initial pool): the first centre is drawn uniformly
      from the pool by the rng, then k-center greedy continues from it.
    - Plain k-center greedy only: the paper's robust variant (a mixed-integer program with an
      outlier budget, initialised by this greedy) is not run, as in most public
      implementations.
    - Distances on the embeddings as given (no normalisation), in float32.

    The products run in torch when the context names a visible CUDA device
    (``strategies.distances.kernel_device``), else numpy.
    """

    chunk_rows: Annotated[int, Ge(1)] = DEFAULT_CHUNK_ROWS

    cold_start = True

    def _select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        x = PoolProducts(context.embeddings, distances.kernel_device(context.device))
        return k_center_greedy(x, context.labelled, n, rng, self.chunk_rows)
