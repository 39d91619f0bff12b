"""k-means and "the point nearest each centre": the clustering steps TypiClust, DropQuery and
AlfaMix share.

``kmeans`` follows TypiClust's reference code (github.com/avihu111/TypiClust,
``deep-al/pycls/al/typiclust.py``): scikit-learn's ``KMeans`` up to 50 clusters and
``MiniBatchKMeans`` (batches of 5000 rows) above, which keeps 500 clusters of a million rows
affordable. The seed of either comes from the trajectory's rng, so the clustering is
reproducible and varies with the trajectory.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from strategies.chunks import DEFAULT_CHUNK_ROWS, row_chunks
from strategies.ties import TIE_RTOL

FULL_KMEANS_MAX_CLUSTERS = 50
"""Up to this many clusters use Lloyd's k-means on all rows; above, mini-batch k-means."""
MINIBATCH_ROWS = 5000
"""Mini-batch size of ``MiniBatchKMeans`` (the TypiClust reference code's value)."""


@dataclass(frozen=True)
class Clustering:
    """The result of ``kmeans``: a cluster id per row and the centres."""

    labels: np.ndarray
    """(M,) int64 cluster id of every row, in ``[0, n_clusters)``."""
    centres: np.ndarray
    """(n_clusters, D) float32."""

    @property
    def n_clusters(self) -> int:
        return int(self.centres.shape[0])


def draw_seed(rng: np.random.Generator) -> int:
    """A seed for a library that takes an integer ``random_state``, drawn from ``rng``."""
    return int(rng.integers(0, 2**31 - 1))


def kmeans(x: np.ndarray, n_clusters: int, rng: np.random.Generator, n_init: int = 1) -> Clustering:
    """Cluster the rows of ``x`` (M, D) into ``n_clusters`` groups with k-means++ seeding.

    ``KMeans`` for ``n_clusters <= 50``, else ``MiniBatchKMeans(batch_size=5000)``, as the
    TypiClust reference code. ``n_init=1``, scikit-learn's current default for k-means++ (the
    reference code ran under the old default of 10 restarts, at ten times the cost). Requires
    ``1 <= n_clusters <= M``. Rows that coincide may leave clusters empty; scikit-learn's
    warning about it is silenced, callers handle empty clusters.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans  # here: importing it costs 1.4 s (not for `status`)
    from sklearn.exceptions import ConvergenceWarning

    x = np.ascontiguousarray(x, dtype=np.float32)
    if not 1 <= n_clusters <= x.shape[0]:
        raise ValueError(f"n_clusters must lie in [1, {x.shape[0]}], got {n_clusters}")
    seed = draw_seed(rng)
    if n_clusters <= FULL_KMEANS_MAX_CLUSTERS:
        model = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed)
    else:
        model = MiniBatchKMeans(
            n_clusters=n_clusters, batch_size=MINIBATCH_ROWS, n_init=n_init, random_state=seed
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x)
    return Clustering(
        labels=model.labels_.astype(np.int64, copy=False),
        centres=model.cluster_centers_.astype(np.float32, copy=False),
    )


def squared_distance_to_own_centre(
    x: np.ndarray, clustering: Clustering, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> np.ndarray:
    """(M,) float32 squared distance of every row to the centre of its cluster, in chunks."""
    result = np.empty(x.shape[0], dtype=np.float32)
    for rows in row_chunks(x.shape[0], chunk_rows):
        diff = x[rows] - clustering.centres[clustering.labels[rows]]
        result[rows] = np.einsum("ij,ij->i", diff, diff, dtype=np.float32)
    return result


def nearest_to_centres(
    x: np.ndarray, clustering: Clustering, rng: np.random.Generator
) -> np.ndarray:
    """Positions (rows of ``x``) of the member of each non-empty cluster nearest its centre.

    One position per non-empty cluster (fewer than ``n_clusters`` when some are empty), the
    largest cluster first; equal distances (``TIE_RTOL``) and equal cluster sizes are ordered
    by ``rng``. O(M D) time, no loop over clusters or rows.
    """
    m = x.shape[0]
    labels = clustering.labels
    dist = squared_distance_to_own_centre(x, clustering)
    nearest = np.full(clustering.n_clusters, np.inf, dtype=np.float32)
    np.minimum.at(nearest, labels, dist)
    tied_best = dist <= nearest[labels] * (1 + TIE_RTOL)
    tiebreak = rng.permutation(m)
    # Within each cluster: the tied nearest first, among them the smallest random key.
    order = np.lexsort((tiebreak, ~tied_best, labels))
    sorted_labels = labels[order]
    first = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    winners = order[first]
    sizes = np.bincount(labels, minlength=clustering.n_clusters)[sorted_labels[first]]
    by_size = np.lexsort((rng.permutation(winners.size), -sizes))
    return winners[by_size]


def cluster_representatives(
    features: np.ndarray,
    candidates: np.ndarray,
    others: np.ndarray,
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``n`` pool indices: one representative per k-means cluster of the candidates, topped up.

    The step DropQuery and AlfaMix share. ``features`` (len(candidates), D) are the rows to
    cluster, ``candidates`` their pool indices, ``others`` the remaining eligible pool indices.

    - more than ``n`` candidates: k-means into ``n`` clusters, the candidate nearest each
      centre (largest cluster first); if clusters came out empty, the missing picks are drawn
      at random from the unpicked candidates;
    - at most ``n`` candidates: all of them, in random order;
    - then, if still short, uniformly at random from ``others``.
    """
    if candidates.size > n:
        picked = candidates[nearest_to_centres(features, kmeans(features, n, rng), rng)]
        if picked.size < n:
            rest = np.setdiff1d(candidates, picked, assume_unique=True)
            picked = np.concatenate([picked, rng.choice(rest, size=n - picked.size, replace=False)])
        return picked
    picked = rng.permutation(candidates)
    if picked.size < n:
        picked = np.concatenate([picked, rng.choice(others, size=n - picked.size, replace=False)])
    return picked
