"""TypiClust: conformance, and equality with a slow reference written from the paper."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans, MiniBatchKMeans

from strategies import INITIAL_POOLS, QueryContext
from strategies.typiclust import TypiClust, mean_knn_distance
from tests.strategies.conformance import StrategyConformance, make_pool


class TestTypiClust(StrategyConformance):
    strategy_name = "typiclust"


class TestTypiClustInitialPool(StrategyConformance):
    strategy_name = "typiclust"
    registry = INITIAL_POOLS


def reference_subspace(x, dim):
    """The rows centred and projected on their top ``dim`` principal directions (exact SVD)."""
    centred = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    if x.shape[1] <= dim:
        return centred
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:dim].T


def reference_kmeans(z, n_clusters, rng):
    """Lloyd's k-means from greedy k-means++ seeds, with loops, in float64 (same rng use)."""
    n = len(z)
    dist = lambda a, b: float(np.sum((a - b) ** 2))
    seeds = [int(rng.integers(n))]
    nearest = [dist(z[i], z[seeds[0]]) for i in range(n)]
    for _ in range(1, n_clusters):
        cumulative = np.cumsum(nearest)
        best = None
        for draw in rng.random(2 + int(np.log(n_clusters))) * cumulative[-1]:
            candidate = min(next(i for i in range(n) if cumulative[i] > draw), n - 1)
            option = [min(nearest[i], dist(z[i], z[candidate])) for i in range(n)]
            if best is None or sum(option) < sum(best[1]):
                best = (candidate, option)
        seeds.append(best[0])
        nearest = best[1]
    centres = [z[s].copy() for s in seeds]
    assign = lambda: np.array([min(range(n_clusters), key=lambda c: (dist(z[i], centres[c]), c)) for i in range(n)])
    labels = assign()
    for _ in range(100):
        for c in range(n_clusters):
            if np.any(labels == c):
                centres[c] = z[labels == c].mean(axis=0)
        new = assign()
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def reference_typiclust(x, labelled, n, rng, k=20, max_clusters=500, min_cluster_size=5, squared=False,
                        clustering="reference", subspace_dim=128):
    """TypiClust with loops and full float64 distance matrices; same rng use as the fast one.

    The rng is used, in order, for: the k-means (its seeds, or the seed of scikit-learn's for
    ``clustering="reference"``), a random rank per cluster (ties between equally covered
    clusters of equal size), and one permutation per pick (ties of typicality) except picks
    from a cluster with a single row left.
    """
    n_clusters = min(int(labelled.sum()) + n, max_clusters)
    if clustering == "subspace":
        cluster_of = reference_kmeans(reference_subspace(x, subspace_dim), n_clusters, rng)
    else:
        seed = int(rng.integers(0, 2**31 - 1))
        if n_clusters <= 50:
            model = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed)
        else:
            model = MiniBatchKMeans(n_clusters=n_clusters, batch_size=5000, n_init=1, random_state=seed)
        cluster_of = model.fit(x.astype(np.float32)).labels_
    tiebreak = rng.permutation(n_clusters)
    size = {c: int(np.sum(cluster_of == c)) for c in range(n_clusters)}
    covered = {c: int(np.sum(cluster_of[labelled] == c)) for c in range(n_clusters)}
    taken = labelled.copy()
    chosen = []
    for _ in range(n):
        free = {c: np.flatnonzero((cluster_of == c) & ~taken) for c in range(n_clusters)}
        open_clusters = [c for c in range(n_clusters) if free[c].size]
        big = [c for c in open_clusters if size[c] > min_cluster_size]
        options = big or open_clusters
        cluster = min(options, key=lambda c: (covered[c], -size[c], tiebreak[c]))
        rows = free[cluster]
        kk = min(k, len(rows) // 2)
        if kk == 0:
            best = rows[0]
        else:
            dist = cdist(x[rows].astype(np.float64), x[rows].astype(np.float64))
            if squared:
                dist = dist**2
            mean_distance = []  # typicality is its inverse
            for a in range(len(rows)):
                others = np.sort(np.delete(dist[a], a))  # distances to the other rows
                mean_distance.append(np.mean(others[:kk]))
            # The most typical row; within 1e-5 (relative) of it counts as a tie (mutual nearest
            # neighbours tie exactly), broken by a random order: the first tied row in it wins.
            order = rng.permutation(len(rows))
            lowest = min(mean_distance)
            best = rows[next(a for a in order if mean_distance[a] <= lowest * (1 + 1e-5))]
        chosen.append(best)
        taken[best] = True
        covered[cluster] += 1
    return np.array(chosen)


@pytest.mark.parametrize(
    "n, d, n_classes, n_labelled, batch, params",
    [
        (400, 8, 3, 0, 12, {}),                        # cold start, full k-means
        (600, 32, 10, 30, 15, {"k": 7}),               # 45 clusters, some labelled
        (300, 16, 4, 30, 60, {}),                      # 90 clusters of ~3 rows: mini-batch k-means
        (500, 8, 5, 200, 40, {"max_clusters": 20}),    # all clusters covered: fallback path
        (2000, 64, 20, 60, 20, {"distance": "squared", "min_cluster_size": 10}),
        (400, 8, 3, 0, 12, {"clustering": "subspace"}),           # the opt-in variant, cold start
        (300, 16, 4, 30, 60, {"clustering": "subspace"}),         # small-cluster path
        (500, 8, 5, 200, 40, {"max_clusters": 20, "clustering": "subspace"}),
        (300, 64, 5, 20, 10, {"clustering": "subspace", "subspace_dim": 4}),  # 4 principal components
    ],
)
def test_matches_reference(n, d, n_classes, n_labelled, batch, params):
    x, _, labelled = make_pool(n=n, d=d, n_classes=n_classes, n_labelled=n_labelled, seed=n + d)
    context = QueryContext(embeddings=x, labelled=labelled, n_classes=n_classes)
    fast = TypiClust(**params).select(context, batch, np.random.default_rng(7))
    slow = reference_typiclust(
        x, labelled, batch, np.random.default_rng(7), k=params.get("k", 20),
        max_clusters=params.get("max_clusters", 500),
        min_cluster_size=params.get("min_cluster_size", 5),
        squared=params.get("distance") == "squared", clustering=params.get("clustering", "reference"),
        subspace_dim=params.get("subspace_dim", 128),
    )
    np.testing.assert_array_equal(fast, slow)


def test_mean_knn_distance_blocks_match_brute_force():
    x = np.random.default_rng(0).normal(size=(301, 5)).astype(np.float32)
    full = cdist(x, x)
    np.fill_diagonal(full, np.inf)
    expected = np.sort(full, axis=1)[:, :4].mean(axis=1)
    for block_elements in (1, 1000, 10**6):  # one row per block, a few rows, everything at once
        fast = mean_knn_distance(x, 4, block_elements=block_elements)
        np.testing.assert_allclose(fast, expected, rtol=1e-4)


def test_first_picks_cover_distinct_clusters():
    # Four tight, far-apart blobs of different sizes: a batch of 4 takes one from each blob.
    rng = np.random.default_rng(1)
    sizes = [100, 60, 40, 30]
    centres = np.array([[0, 0], [50, 0], [0, 50], [50, 50]], np.float32)
    x = np.concatenate([c + rng.normal(size=(s, 2)).astype(np.float32) for c, s in zip(centres, sizes)])
    blob = np.repeat(np.arange(4), sizes)
    context = QueryContext(embeddings=x, labelled=np.zeros(len(x), bool), n_classes=4)
    chosen = TypiClust().select(context, 4, np.random.default_rng(0))
    assert sorted(blob[chosen]) == [0, 1, 2, 3]
    np.testing.assert_array_equal(blob[chosen], [0, 1, 2, 3])  # largest first


def test_principal_subspace_is_the_exact_pca_and_is_reused_per_pool():
    from strategies.subspace import _SUBSPACES, principal_subspace

    x, _, _ = make_pool(n=500, d=48, n_classes=6, seed=3)
    z = principal_subspace(x, 5)
    expected = reference_subspace(x, 5)
    # Same subspace and coordinates up to the sign of each direction: equal Gram matrices.
    np.testing.assert_allclose(z @ z.T, expected @ expected.T, rtol=1e-3, atol=1e-2)
    assert principal_subspace(x, 5) is z  # the same pool: computed once
    changed = x.copy()
    changed[0, 0] += 1.0
    assert principal_subspace(changed, 5) is not z  # another array, another entry
    assert principal_subspace(x, 6) is not z  # another dimension, another entry
    assert len(_SUBSPACES._entries) <= _SUBSPACES.size
