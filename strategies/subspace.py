"""k-means on a pool's principal subspace: TypiClust's clustering at 20k x 4096 in about a
second, where scikit-learn's ``MiniBatchKMeans`` (the authors' choice) took tens of seconds.

Two steps, each a plain, documented algorithm:

- ``principal_subspace``: the rows centred and projected on their top ``dim`` principal
  directions, by a randomized range finder (Halko, Martinsson and Tropp 2011: a Gaussian sketch
  of ``dim + 16`` columns, two power iterations, then the exact PCA of the sketched rows). A
  pure function of the pool (its generator has a fixed seed), so it is memoised per pool
  (``PoolCache``): every query of a trajectory, and every trial a worker runs on the same
  pool, reuses it. Pools of at most ``dim`` dimensions are only centred (distances unchanged).
- ``lloyd_kmeans``: greedy k-means++ seeding (Arthur and Vassilvitskii 2007, with
  scikit-learn's ``2 + log k`` candidates a step, drawn by the trajectory's rng) and Lloyd's iterations until no row changes cluster (or
  ``max_iter``), float32 distances as blocked matrix products; an emptied cluster keeps its
  centre. Ties go to the lowest cluster id.

Distances in the subspace are those of the rows' projections: on embeddings whose variance sits
in a few hundred directions (sentence embeddings; class structure of rank <= C - 1) the
clusters are those of the full space up to rows near a boundary.
"""

from __future__ import annotations

import numpy as np

from strategies.chunks import DEFAULT_CHUNK_ROWS, row_chunks
from strategies.clustering import Clustering
from strategies.kernels import squared_norms
from strategies.pool_cache import PoolCache

OVERSAMPLING = 16
"""Extra columns of the randomized range finder beyond ``dim``."""
POWER_ITERATIONS = 2
"""Power iterations of the range finder (each one pass of ``x`` and ``x.T`` over the sketch)."""
SKETCH_SEED = 0
"""The range finder's Gaussian sketch: fixed, so the subspace depends on the pool only."""


_SUBSPACES = PoolCache()


def principal_subspace(x: np.ndarray, dim: int, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """(N, min(dim, D)) float32: the rows of ``x`` centred and projected on (an estimate of)
    their top ``dim`` principal directions; memoised per pool (``PoolCache``).

    Randomized range finder (module docstring): ``O(N D (dim + 16))`` per pass, 6 passes. A
    projection on orthonormal directions never lengthens a difference. With ``D <= dim`` the
    rows are only centred (every distance kept).
    """
    return _SUBSPACES.get(x, lambda: _project(x, dim, chunk_rows), dim)


def _project(x: np.ndarray, dim: int, chunk_rows: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    d = x.shape[1]
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    if d <= dim:
        return x - mean
    width = min(d, dim + OVERSAMPLING)
    sketch = np.random.default_rng(SKETCH_SEED).standard_normal((d, width)).astype(np.float32)
    basis = _orthonormal(_centred_product(x, mean, sketch, chunk_rows))  # (N, width)
    for _ in range(POWER_ITERATIONS):
        back = _orthonormal(_centred_transpose_product(x, mean, basis, chunk_rows))  # (D, width)
        basis = _orthonormal(_centred_product(x, mean, back, chunk_rows))
    # The top right singular vectors of the centred rows, from the small (width, D) matrix.
    small = _centred_transpose_product(x, mean, basis, chunk_rows).T
    _, _, vt = np.linalg.svd(small.astype(np.float64), full_matrices=False)
    directions = vt[:dim].T.astype(np.float32)  # (D, dim), orthonormal columns
    return _centred_product(x, mean, directions, chunk_rows)


def _orthonormal(a: np.ndarray) -> np.ndarray:
    return np.linalg.qr(a.astype(np.float64))[0].astype(np.float32)


def _centred_product(x, mean, right, chunk_rows) -> np.ndarray:
    """``(x - mean) @ right`` by row blocks (no centred copy of ``x``)."""
    out = np.empty((x.shape[0], right.shape[1]), dtype=np.float32)
    for rows in row_chunks(x.shape[0], chunk_rows):
        np.matmul(x[rows], right, out=out[rows])
    out -= mean @ right
    return out


def _centred_transpose_product(x, mean, left, chunk_rows) -> np.ndarray:
    """``(x - mean).T @ left`` by row blocks, float64 sum over blocks."""
    total = np.zeros((x.shape[1], left.shape[1]), dtype=np.float64)
    for rows in row_chunks(x.shape[0], chunk_rows):
        total += x[rows].T @ left[rows]
    total -= np.outer(mean, left.sum(axis=0, dtype=np.float64))
    return total.astype(np.float32)


def kmeanspp_seeds(x: np.ndarray, n_clusters: int, rng: np.random.Generator, x_sq: np.ndarray) -> np.ndarray:
    """(n_clusters,) row indices: greedy k-means++ seeding, as scikit-learn's.

    The first seed uniformly (``rng.integers``); then, per seed, ``2 + int(log(n_clusters))``
    candidates drawn by squared distance to the nearest seed so far (``rng.random()`` times the
    total, located in the float64 cumulative sum in row order, the first row past it), and the
    candidate leaving the smallest total kept (the first on ties). A total of 0 (every row on
    a seed) takes the lowest unused rows instead.
    """
    n = x.shape[0]
    trials = 2 + int(np.log(n_clusters))
    seeds = np.empty(n_clusters, dtype=np.int64)
    seeds[0] = rng.integers(n)
    nearest = _squared_distances_to_rows(x, x_sq, seeds[:1])[0]
    for k in range(1, n_clusters):
        cumulative = np.cumsum(nearest, dtype=np.float64)
        if cumulative[-1] <= 0:
            seeds[k] = np.setdiff1d(np.arange(n), seeds[:k])[0]
            np.minimum(nearest, _squared_distances_to_rows(x, x_sq, seeds[k : k + 1])[0], out=nearest)
            continue
        draws = rng.random(trials) * cumulative[-1]
        candidates = np.minimum(np.searchsorted(cumulative, draws, side="right"), n - 1)
        options = np.minimum(nearest, _squared_distances_to_rows(x, x_sq, candidates))
        best = int(np.argmin(options.sum(axis=1, dtype=np.float64)))
        seeds[k], nearest = candidates[best], options[best]
    return seeds


def _squared_distances_to_rows(x: np.ndarray, x_sq: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(len(rows), N) float32 squared distances from ``x[rows]`` to every row, clipped at 0."""
    d = x[rows] @ x.T
    d *= -2.0
    d += x_sq
    d += x_sq[rows][:, None]
    np.maximum(d, 0.0, out=d)
    return d


def nearest_centre(x: np.ndarray, centres: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """(N,) int64: each row's nearest centre (squared distance ``|c|^2 - 2 x.c`` in float32,
    blocks of ``chunk_rows`` rows; ties to the lowest id)."""
    c_half = 0.5 * squared_norms(centres)
    labels = np.empty(x.shape[0], dtype=np.int64)
    for rows in row_chunks(x.shape[0], chunk_rows):
        score = x[rows] @ centres.T
        score -= c_half  # maximise x.c - |c|^2 / 2
        labels[rows] = score.argmax(axis=1)
    return labels


def lloyd_kmeans(x: np.ndarray, n_clusters: int, rng: np.random.Generator, max_iter: int = 100) -> Clustering:
    """k-means of the rows of ``x`` (N, d): greedy k-means++ seeds (``kmeanspp_seeds``), then Lloyd's
    iterations (assign each row to its nearest centre, move each centre to its rows' mean; an
    empty cluster keeps its centre) until no row changes cluster, at most ``max_iter`` times.
    O(N d K) per iteration. Requires ``1 <= n_clusters <= N``."""
    from scipy import sparse

    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must lie in [1, {n}], got {n_clusters}")
    centres = x[kmeanspp_seeds(x, n_clusters, rng, squared_norms(x))].copy()
    labels = nearest_centre(x, centres)
    for _ in range(max_iter):
        members = sparse.csr_array((np.ones(n, np.float32), labels, np.arange(n + 1)), shape=(n, n_clusters))
        counts = np.bincount(labels, minlength=n_clusters)
        filled = counts > 0
        centres[filled] = (members.T @ x)[filled] / counts[filled, None]
        new = nearest_centre(x, centres)
        if np.array_equal(new, labels):
            break
        labels = new
    return Clustering(labels=labels, centres=centres)
