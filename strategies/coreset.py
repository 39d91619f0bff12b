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

from strategies import kernels
from strategies.base import QueryContext, QueryStrategy
from strategies.chunks import DEFAULT_CHUNK_ROWS
from strategies.kernels import PoolProducts
from strategies.registry import register_query_strategy
from strategies.ties import argmax_random_ties

FIRST_PASS_ROWS = 256
SHORTLIST_ROWS = 4096


def k_center_greedy(
    x: PoolProducts,
    labelled: np.ndarray,
    n: int,
    rng: np.random.Generator,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    first_pass_rows: int = FIRST_PASS_ROWS,
    shortlist_rows: int = SHORTLIST_ROWS,
) -> np.ndarray:
    """(n,) int64 rows picked by k-center greedy, in pick order.

    ``x``: products on the (N, D) pool; ``labelled``: (N,) bool. Each pick is the row farthest
    from its nearest labelled-or-chosen row, exact ties broken by the rng; with no labelled row
    the first pick is uniform over the pool.

    Lazy, exact evaluation (the greedy's objective only ever shrinks, so stale values are upper
    bounds). Every row keeps an upper bound ``ub`` of its squared distance to the labelled and
    chosen rows: first the minimum over ``first_pass_rows`` evenly spaced labelled rows (one
    N x first_pass_rows pass instead of N x L), then the minimum over the centres it has been
    compared with. Before each pick, only rows whose bound reaches the best exact value are
    brought up to date (against the remaining labelled rows and the centres chosen since), in
    growing batches, until every row at the top is exact. The pick is then the same as with
    every distance computed: the rows skipped are provably not farther. Typical cost: the first
    pass plus a few percent of the N x L distances, and a few rows per pick instead of a 1 x N
    distance row. The search for the top runs on a shortlist of the ``shortlist_rows`` largest
    bounds (widened when its best falls below the largest bound left out), so a pick costs
    O(shortlist) instead of O(N). Rows already labelled or chosen carry -1.
    """
    size = x.n_rows
    labelled_rows = np.flatnonzero(labelled)
    chosen = np.empty(n, dtype=np.int64)
    seen = np.zeros(size, dtype=np.int64)  # ub[i] accounts for chosen[:seen[i]]
    partial = np.zeros(size, dtype=bool)  # ub[i] covers the first-pass labelled rows only
    remaining = np.empty(0, dtype=np.int64)  # labelled rows the first pass skipped
    start = 0
    if labelled_rows.size > 2 * first_pass_rows:
        spaced = (np.arange(first_pass_rows) * (labelled_rows.size / first_pass_rows)).astype(np.int64)
        remaining = np.delete(labelled_rows, spaced)
        ub = x.min_squared_distance_to_rows(labelled_rows[spaced], chunk_rows)
        partial[:] = True
    elif labelled_rows.size:
        ub = x.min_squared_distance_to_rows(labelled_rows, chunk_rows)
    else:
        chosen[0] = rng.integers(size)
        ub = x.squared_distances_to_row(int(chosen[0]))
        seen[:] = start = 1
        ub[chosen[0]] = -1.0
    ub[labelled] = -1.0
    partial[labelled] = False

    def refresh(rows: np.ndarray, k: int) -> None:
        """Make ``ub[rows]`` exact for the labelled rows and ``chosen[:k]``."""
        inexact = rows[partial[rows]]
        if inexact.size:
            found = x.min_squared_distance_between(inexact, remaining, chunk_rows)
            np.minimum(ub[inexact], found, out=found)
            ub[inexact] = found
            partial[inexact] = False
        oldest = int(seen[rows].min())
        if oldest < k:
            found = x.min_squared_distance_between(rows, chosen[oldest:k], chunk_rows)
            np.minimum(ub[rows], found, out=found)
            ub[rows] = found
            seen[rows] = k

    # The search runs on a shortlist, the rows with the largest bounds: any row outside it has
    # ub <= cutoff, so a best exact value above the cutoff is the best of the whole pool.
    shortlist_size = shortlist_rows

    def shortlist_of(size: int) -> tuple[np.ndarray, float]:
        if size >= ub.size:
            return np.arange(ub.size), -np.inf
        order = np.argpartition(ub, ub.size - size)
        return order[ub.size - size :], float(ub[order[: ub.size - size]].max())

    shortlist, cutoff = shortlist_of(shortlist_size)
    for k in range(start, n):
        batch = 256
        while True:
            bounds = ub[shortlist]
            stale = (partial[shortlist] | (seen[shortlist] < k)) & (bounds >= 0)
            exact_values = bounds[~stale]
            best = exact_values.max() if exact_values.size else -1.0
            contenders = shortlist[stale & (bounds >= best)]
            if contenders.size == 0:
                if best > cutoff:
                    break
                shortlist_size *= 4
                shortlist, cutoff = shortlist_of(shortlist_size)
                continue
            if contenders.size > batch:
                contenders = contenders[np.argpartition(ub[contenders], -batch)[-batch:]]
            refresh(contenders, k)
            batch *= 2
        pick = argmax_random_ties(ub, rng)  # every row that reaches the top is exact here
        chosen[k] = pick
        ub[pick] = -1.0
    return chosen


@register_query_strategy("coreset", initial_pool=True)
@dataclass(frozen=True)
class Coreset(QueryStrategy):
    """k-center greedy on the embeddings (Euclidean distance), ``n`` picks.

    Each pick is the unlabelled, not yet chosen row whose distance to its nearest labelled or
    already chosen row is largest (exact ties broken by the rng). Evaluated lazily and exactly
    (``k_center_greedy``): at most O((L + n) N D) time, usually a small fraction of it; O(N)
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
    (``strategies.kernels.kernel_device``), else numpy.
    """

    chunk_rows: Annotated[int, Ge(1)] = DEFAULT_CHUNK_ROWS

    cold_start = True

    def _select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        x = PoolProducts(context.embeddings, kernels.kernel_device(context.device))
        return k_center_greedy(x, context.labelled, n, rng, self.chunk_rows)
