"""ProbCover (Yehuda, Dekel, Hacohen and Weinshall 2022, "Active Learning Through a Covering
Lens", NeurIPS; reference code github.com/avihu111/TypiClust, ``deep-al/pycls/al/prob_cover.py``).

Low-budget, model-free selection: join every two rows closer than ``delta`` (a ball of radius
``delta`` around each row), then greedily pick the row whose ball covers the most rows not yet
covered, B times, after removing the rows the labelled rows already cover (greedy maximum
coverage). ``delta`` is the largest radius whose balls stay "pure" for a fraction ``alpha`` of
the rows, purity measured against a k-means clustering with as many clusters as classes.
Works with nothing labelled, so it is both a query strategy and an initial pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from annotated_types import Ge, Gt, Interval
from threadpoolctl import threadpool_limits

from strategies import kernels
from strategies.base import QueryContext, QueryStrategy, StrategyError
from strategies.chunks import DEFAULT_CHUNK_ROWS, row_chunks
from strategies.clustering import Clustering, kmeans
from strategies.kernels import min_squared_distance_to_other_group, squared_norms
from strategies.pool_cache import PoolCache
from strategies.radius_graph import RadiusPairs, TooManyEdgesError, radius_graph, radius_neighbours
from strategies.registry import register_query_strategy
from strategies.ties import argmax_random_ties


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """A float32 copy of ``x`` with unit-norm rows (all-zero rows stay zero)."""
    norms = np.sqrt(squared_norms(x))
    norms[norms == 0] = 1.0
    return (x / norms[:, None]).astype(np.float32, copy=False)


def pca_project(x: np.ndarray, dim: int, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """(N, dim) float32: the rows of ``x`` centred and projected on their top ``dim`` principal
    directions (covariance summed over row chunks; no N x D copy besides the result).

    A projection on orthonormal directions never lengthens a difference, so every distance
    shrinks or stays: a radius graph built here is a superset of the one at the same radius in
    the original space (``ProbCover(approximate=True)`` re-chooses the radius here instead).
    """
    n, d = x.shape
    mean = x.mean(axis=0, dtype=np.float64)
    cov = np.zeros((d, d), dtype=np.float64)
    centre = mean.astype(np.float32)
    for rows in row_chunks(n, chunk_rows):
        block = x[rows] - centre
        cov += block.T @ block  # float32 product per chunk, float64 sum over chunks
    _, vectors = np.linalg.eigh(cov)  # ascending eigenvalues
    basis = vectors[:, ::-1][:, :dim].astype(np.float32)
    out = np.empty((n, basis.shape[1]), dtype=np.float32)
    shift = (mean.astype(np.float32) @ basis)[None, :]
    for rows in row_chunks(n, chunk_rows):
        np.matmul(x[rows], basis, out=out[rows])
        out[rows] -= shift
    return out


def cluster(x: np.ndarray, n_clusters: int, rng: np.random.Generator) -> Clustering:
    """k-means of ``x`` into ``min(n_clusters, N)`` clusters (``strategies.clustering.kmeans``,
    seeded from ``rng``), with one BLAS thread (more only slow scikit-learn's k-means++ seeding
    down on a few busy cores; its Lloyd iterations use their own threads)."""
    with threadpool_limits(limits=1, user_api="blas"):
        return kmeans(x, min(n_clusters, x.shape[0]), rng)


def purity_delta(
    x: np.ndarray,
    groups: np.ndarray,
    alpha: float,
    rng: np.random.Generator,
    grid_size: int = 100,
    sample: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    device: str | None = None,
) -> float:
    """The largest radius on a grid whose balls are pure for at least ``alpha`` of the rows.

    ``groups``: (N,) the cluster of every row (the paper: k-means with as many clusters as
    classes, see ``cluster``). The open ball of radius ``delta`` around row i is pure when every
    row in it shares i's cluster, i.e. when ``delta <= d_i``, the distance from i to the
    nearest row of another cluster. Purity ``pi(delta) = mean_i [d_i >= delta]`` is computed
    over all rows, or over ``sample`` rows drawn by ``rng`` (an unbiased estimate that costs
    ``sample x N`` distances instead of ``N x N``) when ``sample < N``. Candidates:
    ``grid_size`` evenly spaced radii ``max_i d_i * k / grid_size``, k = 1..grid_size; the
    largest with purity >= alpha is returned. If even the smallest fails, the exact largest
    radius, the ``alpha`` lower quantile of the ``d_i``, is returned instead.
    """
    n = x.shape[0]
    rows = np.arange(n)
    if sample is not None and sample < n:
        rows = rng.choice(n, size=sample, replace=False)
    d = np.sqrt(min_squared_distance_to_other_group(x, rows, groups, chunk_rows, device).astype(np.float64))
    finite = d[np.isfinite(d)]
    if finite.size == 0:
        raise StrategyError(
            "ProbCover could not estimate delta: the k-means clustering has a single cluster; "
            "set `delta` explicitly"
        )
    candidates = finite.max() * np.arange(1, grid_size + 1) / grid_size
    d_sorted = np.sort(d)
    purity = (d.size - np.searchsorted(d_sorted, candidates, side="left")) / d.size
    ok = np.flatnonzero(purity >= alpha)
    if ok.size:
        return float(candidates[ok[-1]])
    return float(d_sorted[d.size - math.ceil(alpha * d.size)])


POOL_DELTA_SEED = 0
"""``delta_per: pool``: the seed of the k-means and purity sample that choose the pool's radius."""
_DELTAS = PoolCache(size=8)
"""``delta_per: pool``: the radius of each recent pool (a float each)."""
_GRAPHS = PoolCache(size=1)
"""The whole radius graph of the last (pool, radius) built with a fixed radius: one graph, at
most ``max_edges`` edges, held per worker process."""

FULL_GRAPH_ABOVE = 0.5
"""Fraction of the pool left uncovered by the labelled rows above which ProbCover builds the
whole radius graph (N^2 / 2 pairs) rather than the uncovered rows' balls (uncovered x N)."""


def max_coverage_greedy(
    neighbours, uncovered: np.ndarray, labelled: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """(n,) int64 rows picked by greedy maximum coverage, in pick order.

    ``uncovered``: (U,) the rows no labelled row's ball covers; ``neighbours``: boolean CSR
    (U, N), row k marking every row within ``delta`` of ``uncovered[k]`` (itself included), i.e.
    the balls that cover it. Each pick is the unlabelled, not yet chosen row whose ball covers
    the most rows still uncovered (exact ties broken by the rng); those rows become covered
    and every ball's count drops accordingly (one gather of their rows, an O(N) ``bincount``).
    Once no pick covers anything new, the rest of the batch is uniform without replacement
    over the unlabelled rows not yet chosen. Only edges that touch an uncovered row matter, so
    nothing else is needed.
    """
    size = labelled.size
    covers = neighbours.T.tocsr()  # (N, U): the uncovered rows each ball holds
    still = np.ones(uncovered.size, dtype=bool)
    degree = np.bincount(neighbours.indices, minlength=size).astype(np.int64)
    degree[labelled] = -1
    taken = labelled.copy()
    chosen = np.empty(n, dtype=np.int64)
    for k in range(n):
        if degree.max() <= 0:  # everything is covered: fill the batch at random
            chosen[k:] = rng.choice(np.flatnonzero(~taken), size=n - k, replace=False)
            break
        pick = argmax_random_ties(degree, rng)
        chosen[k] = pick
        taken[pick] = True
        ball = covers.indices[covers.indptr[pick] : covers.indptr[pick + 1]]
        new = ball[still[ball]]
        still[new] = False
        degree -= np.bincount(neighbours[new].indices, minlength=size)
        degree[pick] = -1
    return chosen


@register_query_strategy("probcover", initial_pool=True)
@dataclass(frozen=True)
class ProbCover(QueryStrategy):
    """Greedy maximum coverage of the pool by balls of radius ``delta``.

    Per query: (1) rows L2-normalised (``normalize``, as the reference code loads its
    features); (2) ``delta`` from cluster purity (``purity_delta``) unless given; (3) the rows
    the labelled rows' balls cover (labelled x N distances); (4) the exact balls
    ``||x_i - x_j|| < delta`` that cover each row still uncovered, kept as a sparse CSR, never
    N x N dense: from the uncovered rows' own distances (uncovered x N,
    ``strategies.radius_graph.radius_neighbours``) while at most half the pool is uncovered, else
    from the whole radius graph (``radius_graph``, N^2 / 2 pairs); (5) ``max_coverage_greedy``,
    which needs no other edge. Picks are the same either way.

    Cost: the distance passes compare pairs of rows, D multiply-adds each. On a CPU that
    multiplies bfloat16 natively they run as a bfloat16 product with a proven error bound,
    pairs near ``delta`` rechecked in float32 (``strategies.radius_graph.Bf16Screen``): the graph
    is the float32 one, about twice as fast. Once the labelled rows cover much of the pool (as
    the greedy intends) a query costs far less than the whole graph; a cold start (nothing
    labelled) builds it all: 79 s at N = 100k, D = 768 on two cores (10 s with L = 1000). The passes run
    in torch on a CUDA device when the context names one; ``approximate`` cuts them instead.

    Parameters (defaults from the paper where it gives one)
    ----------
    delta: None (default) picks the radius by purity; a positive value fixes it (in the units
        of the, possibly normalised, embeddings).
    alpha: 0.95, the purity threshold of the paper.
    normalize: True, L2-normalise the rows first (the reference code's features are).
    delta_grid: 100 candidate radii, evenly spaced up to the largest distance to another
        cluster (the paper scans a grid; its step is not tied to our embeddings).
    purity_sample: 5000 rows on which purity is measured (drawn by the rng); None measures it
        on every row, an N x N pass that roughly triples the cost of a query.
    chunk_rows: 4096, block side of the distance passes (a block is ``chunk_rows**2``
        float32, 64 MiB at the default).
    max_edges: 600 million directed edges (about 10 GiB at the peak of building the graph,
        3 GiB to hold it) before the query fails with a clear error instead of running out
        of memory; lower ``delta``.
    approximate: False. True runs everything (purity radius, graph, coverage) on the rows
        projected on their top ``approximate_dim`` principal directions (``pca_project``):
        about ``D / approximate_dim`` times less work in the O(N^2) graph pass, but the graph
        is only exact for the projected rows, an approximation of ProbCover on the embeddings.
    approximate_dim: 128, the projection's dimension when ``approximate`` (ignored if >= D).
    delta_per: "query" (default) chooses ``delta`` by purity at every query, from a k-means and
        a purity sample drawn by the trajectory's rng, so the radius (and the graph) changes
        from query to query and nothing can be reused: each query costs the k-means, the
        purity pass (``purity_sample`` x N distances) and the radius graph (N^2 / 2 pairs at a
        cold or near-cold start). "pool", a named variant to opt into, is the paper's
        procedure: ``delta`` is chosen once per pool (same purity rule, its k-means and sample
        seeded by ``POOL_DELTA_SEED``, not by the trial), so every query and every trial of a
        worker on the pool shares one radius and one radius graph (``PoolCache``, one graph of
        at most ``max_edges`` edges per process): the first query costs what a default query
        does, the next ones only the greedy (milliseconds). It selects other rows than the
        default (another radius, and the rng only breaks ties); measured against it in the
        README ("Trajectory cost at the study's shapes"). A fixed ``delta`` shares the graph
        the same way, with the same picks as without the cache.

    Choices the paper leaves open, made here:
    - Balls are open (``distance < delta``) and contain their centre, as the reference code.
    - Purity over a sample of rows by default (see ``purity_sample``), k-means seeded by the
      rng with k = number of classes (``strategies.clustering.kmeans``).
    - Equal coverage counts are broken by the rng (the reference code takes the lowest index).
    - When every row is covered (a pick would cover nothing new), the rest of the batch is
      drawn uniformly without replacement from the unlabelled rows not yet chosen (the
      reference code would keep returning its first index).
    - With ``delta_per: query`` and no fixed ``delta`` the balls are rebuilt at every query;
      otherwise the whole graph is memoised per (pool, radius), which changes no pick.
    """

    delta: Annotated[float, Gt(0)] | None = None
    alpha: Annotated[float, Interval(gt=0, lt=1)] = 0.95
    normalize: bool = True
    delta_grid: Annotated[int, Ge(1)] = 100
    purity_sample: Annotated[int, Ge(1)] | None = 5000
    chunk_rows: Annotated[int, Ge(1)] = 4096
    max_edges: Annotated[int, Ge(1)] = 600_000_000
    approximate: bool = False
    approximate_dim: Annotated[int, Ge(1)] = 128
    delta_per: Literal["query", "pool"] = "query"

    cold_start = True

    def _select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        device = kernels.kernel_device(context.device)
        pool = context.embeddings
        rows = _Rows(self, pool)
        try:
            if self.delta is not None or self.delta_per == "pool":
                delta = float(self.delta) if self.delta is not None else _DELTAS.get(
                    pool, lambda: self._purity_delta(rows.get(), context.n_classes,
                                                     np.random.default_rng(POOL_DELTA_SEED), device),
                    self._variant(), context.n_classes)
                graph = _GRAPHS.get(pool, lambda: radius_graph(rows.get(), delta, self.chunk_rows, device,
                                                               self.max_edges), self._variant(), delta)
                neighbours, uncovered = uncovered_rows_of(graph, context.labelled)
            else:
                delta = self._purity_delta(rows.get(), context.n_classes, rng, device)
                neighbours, uncovered = self._uncovered_balls(rows.get(), context.labelled, delta, device)
        except TooManyEdgesError as error:
            raise StrategyError(f"ProbCover: {error} (`max_edges`), or set a smaller `delta`") from error
        return max_coverage_greedy(neighbours, uncovered, context.labelled, n, rng)

    def _variant(self) -> tuple:
        """What, besides the pool, the rows and the radius depend on (a cache key's part)."""
        return (self.normalize, self.approximate, self.approximate_dim, self.alpha, self.delta_grid,
                self.purity_sample, self.chunk_rows)

    def _purity_delta(self, x: np.ndarray, n_classes: int, rng: np.random.Generator, device) -> float:
        return purity_delta(x, cluster(x, n_classes, rng).labels, self.alpha, rng, self.delta_grid,
                            self.purity_sample, self.chunk_rows, device)

    def _uncovered_balls(self, x: np.ndarray, labelled: np.ndarray, delta: float, device):
        """The rows no labelled row's ball covers, and the balls that cover each of them:
        from their own distances (uncovered x N) when few are left, else from the whole
        radius graph (N^2 / 2 pairs, half the work per pair)."""
        size = labelled.size
        pairs = RadiusPairs(x, delta, device)  # one set-up for both passes
        covered = labelled.copy()
        labelled_rows = np.flatnonzero(labelled)
        if labelled_rows.size:
            balls = radius_neighbours(pairs, labelled_rows, delta, self.chunk_rows, max_edges=self.max_edges)
            covered[balls.indices] = True
        uncovered = np.flatnonzero(~covered)
        if uncovered.size > FULL_GRAPH_ABOVE * size:
            graph = radius_graph(pairs, delta, self.chunk_rows, max_edges=self.max_edges)
            if uncovered.size == size:  # nothing covered (a cold start): no copy of the graph
                return graph, uncovered
            return graph[uncovered], uncovered
        return radius_neighbours(pairs, uncovered, delta, self.chunk_rows, max_edges=self.max_edges), uncovered


class _Rows:
    """The rows ProbCover measures (normalised, projected if ``approximate``), computed on
    first use only: a query that finds its radius graph memoised needs none."""

    def __init__(self, strategy: ProbCover, pool: np.ndarray) -> None:
        self.strategy, self.pool, self.rows = strategy, pool, None

    def get(self) -> np.ndarray:
        if self.rows is None:
            s, x = self.strategy, self.pool
            x = l2_normalise(x) if s.normalize else x
            if s.approximate and s.approximate_dim < x.shape[1]:
                x = pca_project(x, s.approximate_dim, s.chunk_rows)
            self.rows = x
        return self.rows


def uncovered_rows_of(graph, labelled: np.ndarray):
    """From the whole radius graph: the balls covering each row no labelled row's ball covers
    (rows of the graph), and those rows, as ``ProbCover._uncovered_balls`` returns them."""
    covered = labelled.copy()
    covered[graph[np.flatnonzero(labelled)].indices] = True
    uncovered = np.flatnonzero(~covered)
    if uncovered.size == labelled.size:
        return graph, uncovered
    return graph[uncovered], uncovered
