"""Chunked distance kernels shared by the diversity strategies (numpy, or torch on a device).

Nothing here holds an N x N or N x L matrix: work proceeds in row blocks of ``chunk_rows``.
The torch twins of these kernels are in ``strategies.torch_kernels``; the radius graph of
ProbCover in ``strategies.radius_graph``.
"""

from __future__ import annotations

import numpy as np

from strategies import torch_kernels
from strategies.chunks import DEFAULT_CHUNK_ROWS, row_chunks


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


# --------------------------------------------------------------------------------------------
# Device-aware kernels (numpy on the host, or torch on a GPU).
#
# The heavy part of the diversity strategies is a product against the (N, D) pool: one N-vector
# per pick (Badge, Coreset) or an N x N pass in blocks (ProbCover). Those run in torch when the
# context names a CUDA device that torch can see; everything O(N) (running minima, sampling,
# argmax, bookkeeping) stays in numpy on the host. Results always come back as numpy float32.
# ``device=None`` means numpy; any torch device string (``"cpu"`` included, which the tests use
# to exercise the torch code without a GPU) means torch on that device.
# --------------------------------------------------------------------------------------------


def kernel_device(context_device: str | None) -> str | None:
    """The torch device kernels should run on for a ``QueryContext.device``, or None (numpy).

    ``"cuda"``/``"cuda:k"`` gives that device when torch is installed with a visible GPU;
    anything else (``"cpu"``, no GPU, no torch) gives None: on the CPU the numpy kernels are as
    fast as torch's for these shapes and avoid a copy of the pool.
    """
    if not context_device or not str(context_device).startswith("cuda"):
        return None
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but keep numpy usable
        return None
    return str(context_device) if torch.cuda.is_available() else None


class PoolProducts:
    """Products against the rows of one fixed (N, K) float32 matrix, on numpy or a torch device.

    Holds the matrix (copied once to ``device`` when that is a torch device) and its squared
    row norms; ``dot_row`` is one matrix-vector product, O(N K), the per-pick cost of k-center
    greedy and of k-means++ seeding.
    """

    def __init__(self, x: np.ndarray, device: str | None = None) -> None:
        self.x = np.asarray(x, dtype=np.float32)
        self.device = device
        self._t = None if device is None else torch_kernels.to_torch(self.x, device)
        self.sq_norms = squared_norms(self.x)

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    def dot_row(self, row: int) -> np.ndarray:
        """(N,) float32: ``x @ x[row]``."""
        if self._t is None:
            return self.x @ self.x[row]
        return torch_kernels.to_numpy(self._t @ self._t[row])

    def squared_distances_to_row(self, row: int) -> np.ndarray:
        """(N,) float32 squared distance of every row to row ``row``, clipped at 0."""
        d = self.dot_row(row)
        d *= -2.0
        d += self.sq_norms
        d += self.sq_norms[row]
        np.maximum(d, 0.0, out=d)
        return d

    def min_squared_distance_to_rows(
        self, rows: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> np.ndarray:
        """(N,) float32 squared distance of every row to its nearest row among ``rows``.

        Blocks of ``chunk_rows x chunk_rows``; ``inf`` everywhere when ``rows`` is empty.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if self._t is None:
            return min_squared_distance_to(self.x, self.x[rows], chunk_rows, x_sq=self.sq_norms)
        t = self._t
        return torch_kernels.to_numpy(
            torch_kernels.min_squared_distance_to(t, t[torch_kernels.index(rows, t)], chunk_rows)
        )

    def min_squared_distance_between(
        self, rows: np.ndarray, centre_rows: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> np.ndarray:
        """(len(rows),) float32 squared distance of each of ``rows`` to its nearest row among
        ``centre_rows`` (a gather of both, then blocks; for a few rows at a time)."""
        rows = np.asarray(rows, dtype=np.int64)
        centre_rows = np.asarray(centre_rows, dtype=np.int64)
        if self._t is None:
            return min_squared_distance_to(
                self.x[rows], self.x[centre_rows], chunk_rows, x_sq=self.sq_norms[rows]
            )
        t = self._t
        return torch_kernels.to_numpy(
            torch_kernels.min_squared_distance_to(
                t[torch_kernels.index(rows, t)], t[torch_kernels.index(centre_rows, t)], chunk_rows
            )
        )


def min_squared_distance_to_other_group(
    x: np.ndarray,
    query_rows: np.ndarray,
    groups: np.ndarray,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    device: str | None = None,
) -> np.ndarray:
    """(Q,) float32: squared distance from each ``x[query_rows[q]]`` to the nearest row of ``x``
    whose group differs from its own (``inf`` if every row shares its group).

    Blocks of ``chunk_rows x chunk_rows``; numpy, or torch on ``device``.
    """
    query_rows = np.asarray(query_rows, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    n, q = x.shape[0], query_rows.shape[0]
    if device is not None:
        return torch_kernels.min_squared_distance_to_other_group(x, query_rows, groups, chunk_rows, device)
    x_sq = squared_norms(x)
    out = np.full(q, np.inf, dtype=np.float32)
    for qs in row_chunks(q, chunk_rows):
        rows = query_rows[qs]
        xq, gq = x[rows], groups[rows]
        for cols in row_chunks(n, chunk_rows):
            block = xq @ x[cols].T
            block *= -2.0
            block += x_sq[cols][None, :]
            np.putmask(block, gq[:, None] == groups[cols][None, :], np.inf)
            best = block.min(axis=1)
            best += x_sq[rows]
            np.maximum(best, 0.0, out=best)
            np.minimum(out[qs], best, out=out[qs])
    return out


