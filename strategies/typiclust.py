"""TypiClust (Hacohen, Dekel and Weinshall 2022, "Active Learning on a Budget: Opposite
Strategies Suit High and Low Budgets", ICML; reference code github.com/avihu111/TypiClust,
``deep-al/pycls/al/typiclust.py``).

Low-budget, model-free selection: cluster the pool, then take the most *typical* point of the
largest clusters that hold no labelled point yet. Typicality is the inverse of the mean
distance to the K nearest neighbours inside the cluster. Works with nothing labelled, so it is
both a query strategy and an initial pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from annotated_types import Ge

from strategies.base import QueryContext, QueryStrategy
from strategies.clustering import kmeans
from strategies.kernels import squared_distances, squared_norms
from strategies.registry import register_query_strategy
from strategies.subspace import lloyd_kmeans, principal_subspace
from strategies.ties import argmin_random_ties

BLOCK_ELEMENTS = 1 << 24
"""Distance entries (float32) held at once by ``mean_knn_distance``: 64 MiB."""


def mean_knn_distance(
    x: np.ndarray, k: int, squared: bool = False, block_elements: int = BLOCK_ELEMENTS
) -> np.ndarray:
    """(M,) mean distance of every row of ``x`` to its ``k`` nearest other rows.

    Exact k-nearest neighbours by blocks of rows against all M rows (never M x M at once;
    ``block_elements`` bounds a block), the row itself excluded. ``squared`` averages squared
    Euclidean distances instead of distances. Requires ``1 <= k < M``.
    """
    m = x.shape[0]
    if not 1 <= k < m:
        raise ValueError(f"k must lie in [1, {m - 1}], got {k}")
    x_sq = squared_norms(x)
    result = np.empty(m, dtype=np.float32)
    step = max(1, block_elements // m)
    for start in range(0, m, step):
        stop = min(start + step, m)
        block = squared_distances(x[start:stop], x, x_sq[start:stop], x_sq)
        block[np.arange(stop - start), np.arange(start, stop)] = np.inf  # not its own neighbour
        nearest = np.partition(block, k - 1, axis=1)[:, :k]
        if not squared:
            np.sqrt(nearest, out=nearest)
        result[start:stop] = nearest.mean(axis=1)
    return result


@register_query_strategy("typiclust", initial_pool=True)
@dataclass(frozen=True)
class TypiClust(QueryStrategy):
    """Most typical points of the largest clusters not yet covered by a labelled point.

    Per query: k-means of the whole pool into ``min(L + B, max_clusters)`` clusters (L labelled,
    B the batch; see ``clustering``). Then B times: take the cluster with the fewest labelled or
    already chosen points, the largest among those (ties by the rng), skipping clusters of
    ``min_cluster_size`` rows or fewer while others remain; within it, among its unlabelled
    and not yet chosen rows, pick the one of highest typicality ``1 / mean distance to its K
    nearest neighbours`` with ``K = min(k, rows // 2)`` (a single row is taken as it is).

    Parameters (defaults from the paper and its reference code)
    ----------
    k: 20, neighbours of the typicality estimate.
    max_clusters: 500, cap on the number of clusters.
    min_cluster_size: 5; clusters with at most this many rows are skipped while larger ones
        with unlabelled rows remain (the reference code keeps ``cluster_size > 5``).
    distance: "euclidean" as in the paper's definition of typicality; "squared" averages
        squared distances, which is what the reference code computes (faiss ``IndexFlatL2``
        returns squared distances).
    clustering: "reference" (default): scikit-learn's ``KMeans`` up to 50 clusters and
        ``MiniBatchKMeans`` above on the full embeddings, as the reference code
        (``strategies.clustering.kmeans``): 44 s a query at N = 20k, D = 4096, 420 clusters, one
        thread, almost all of it scikit-learn's k-means. "subspace", a named variant to opt
        into: Lloyd's k-means with greedy k-means++ seeding on the pool's top ``subspace_dim``
        principal components (``strategies.subspace``; the projection is computed once per pool
        and reused by every query and sibling trial of the worker), about 8x faster a query
        (README, "Trajectory cost at the study's shapes"). It is another k-means, so it
        selects other rows than the reference: about as different as the reference with
        another seed, with learning curves within the spread of the seeds on the store's
        entries measured (README); use it where TypiClust's k-means dominates the cost (large
        pools, wide embeddings), not where results must match the reference code's.
    subspace_dim: 128, dimensions of the "subspace" clustering (pools of at most this many
        dimensions are only centred); ignored by "reference". Typicality always uses the full embeddings.

    Choices the paper leaves open, made here:
    - Neighbours are computed among the cluster's unlabelled, not yet chosen rows (as the
      reference code does), exactly and in blocks rather than with faiss.
    - Once every cluster holds a labelled or chosen point, selection goes on with the least
      covered clusters, largest first (the reference code instead cycles through its initial
      ordering). Clusters with no unlabelled row left are never picked.
    - Equal typicality (up to ``TIE_RTOL``, see ``strategies.ties``: mutual nearest
      neighbours tie exactly) is broken by the rng; the reference code takes the first index.

    Cost: the k-means of the pool (``clustering``), plus per pick an exact KNN inside one cluster, O(m^2 D) for
    m remaining rows, in blocks of at most 2^24 distances. Cheap with hundreds of clusters; a
    cold start with a few clusters of a very large pool is the expensive case.
    """

    k: Annotated[int, Ge(1)] = 20
    max_clusters: Annotated[int, Ge(1)] = 500
    min_cluster_size: Annotated[int, Ge(0)] = 5
    distance: Literal["euclidean", "squared"] = "euclidean"
    clustering: Literal["reference", "subspace"] = "reference"
    subspace_dim: Annotated[int, Ge(1)] = 128

    cold_start = True

    def _select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        x = context.embeddings
        labelled = context.labelled
        n_clusters = min(int(np.count_nonzero(labelled)) + n, self.max_clusters)
        if self.clustering == "subspace":
            cluster_of = lloyd_kmeans(principal_subspace(x, self.subspace_dim), n_clusters, rng).labels
        else:
            cluster_of = kmeans(x, n_clusters, rng).labels

        sizes = np.bincount(cluster_of, minlength=n_clusters)
        covered = np.bincount(cluster_of[labelled], minlength=n_clusters)
        left = np.bincount(cluster_of[~labelled], minlength=n_clusters)
        large = sizes > self.min_cluster_size
        tiebreak = rng.permutation(n_clusters)
        # Unlabelled rows grouped by cluster: cluster c owns members[starts[c]:starts[c + 1]].
        unlabelled = context.unlabelled_indices()
        members = unlabelled[np.argsort(cluster_of[unlabelled], kind="stable")]
        starts = np.r_[0, np.cumsum(left)]
        taken = np.zeros(x.shape[0], dtype=bool)

        chosen = np.empty(n, dtype=np.int64)
        for i in range(n):
            open_ = left > 0
            pool = np.flatnonzero(open_ & large) if (open_ & large).any() else np.flatnonzero(open_)
            best = np.lexsort((tiebreak[pool], -sizes[pool], covered[pool]))[0]
            cluster = pool[best]
            rows = members[starts[cluster] : starts[cluster + 1]]
            rows = rows[~taken[rows]]
            chosen[i] = rows[self._most_typical(x[rows], rng)]
            taken[chosen[i]] = True
            covered[cluster] += 1
            left[cluster] -= 1
        return chosen

    def _most_typical(self, x: np.ndarray, rng: np.random.Generator) -> int:
        """Position of the most typical row of ``x`` (one cluster's remaining rows)."""
        k = min(self.k, x.shape[0] // 2)
        if k == 0:
            return 0
        return argmin_random_ties(mean_knn_distance(x, k, squared=self.distance == "squared"), rng)
