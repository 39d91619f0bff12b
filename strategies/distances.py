"""Chunked distance kernels shared by the diversity strategies (numpy, or torch on a device).

Nothing here holds an N x N or N x L matrix: work proceeds in row blocks of ``chunk_rows``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

DEFAULT_CHUNK_ROWS = 8192


def row_chunks(n_rows: int, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[slice]:
    """Consecutive slices covering ``range(n_rows)``, the last one possibly shorter."""
    for start in range(0, n_rows, chunk_rows):
        yield slice(start, min(start + chunk_rows, n_rows))


def squared_norms(x: np.ndarray) -> np.ndarray:
    """(N,) squared L2 norms, float32."""
    return np.einsum("ij,ij->i", x, x, dtype=np.float32)


def squared_distances(
    x: np.ndarray,
    y: np.ndarray,
    x_sq: np.ndarray | None = None,
    y_sq: np.ndarray | None = None,
) -> np.ndarray:
    """(len(x), len(y)) squared Euclidean distances, clipped at 0 (one block; caller chunks)."""
    x_sq = squared_norms(x) if x_sq is None else x_sq
    y_sq = squared_norms(y) if y_sq is None else y_sq
    d = x @ y.T
    d *= -2.0
    d += x_sq[:, None]
    d += y_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def min_squared_distance_to(
    x: np.ndarray,
    centres: np.ndarray,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    x_sq: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) squared distance from every row of ``x`` to its nearest row of ``centres``.

    Memory: one ``chunk_rows x chunk_rows`` block at a time; ``inf`` when there are no centres.
    """
    n = x.shape[0]
    result = np.full(n, np.inf, dtype=np.float32)
    if centres.shape[0] == 0:
        return result
    x_sq = squared_norms(x) if x_sq is None else x_sq
    c_sq = squared_norms(centres)
    for rows in row_chunks(n, chunk_rows):
        for cols in row_chunks(centres.shape[0], chunk_rows):
            block = squared_distances(x[rows], centres[cols], x_sq[rows], c_sq[cols])
            np.minimum(result[rows], block.min(axis=1), out=result[rows])
    return result
