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


def to_torch(x: np.ndarray, device: str):
    """``x`` as a torch tensor on ``device`` (zero-copy on the CPU; never written to)."""
    import warnings

    import torch

    with warnings.catch_warnings():  # read-only pool views: torch warns, we never write
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(x, device=device)


def _to_numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy()


class PoolProducts:
    """Products against the rows of one fixed (N, K) float32 matrix, on numpy or a torch device.

    Holds the matrix (copied once to ``device`` when that is a torch device) and its squared
    row norms; ``dot_row`` is one matrix-vector product, O(N K), the per-pick cost of k-center
    greedy and of k-means++ seeding.
    """

    def __init__(self, x: np.ndarray, device: str | None = None) -> None:
        self.x = np.asarray(x, dtype=np.float32)
        self.device = device
        self._t = None if device is None else to_torch(self.x, device)
        self.sq_norms = squared_norms(self.x)

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    def dot_row(self, row: int) -> np.ndarray:
        """(N,) float32: ``x @ x[row]``."""
        if self._t is None:
            return self.x @ self.x[row]
        return _to_numpy(self._t @ self._t[row])

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
        return _to_numpy(_torch_min_sq_dist(self._t, self._t[_torch_index(rows, self._t)], chunk_rows))

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
        return _to_numpy(
            _torch_min_sq_dist(t[_torch_index(rows, t)], t[_torch_index(centre_rows, t)], chunk_rows)
        )


def _torch_index(rows: np.ndarray, like):
    import torch

    return torch.as_tensor(rows, dtype=torch.int64, device=like.device)


def _torch_min_sq_dist(x, centres, chunk_rows: int):
    """Torch twin of ``min_squared_distance_to``: (N,) float32 on the tensors' device."""
    import torch

    n = x.shape[0]
    result = torch.full((n,), float("inf"), dtype=torch.float32, device=x.device)
    if centres.shape[0] == 0:
        return result
    x_sq = (x * x).sum(dim=1)
    c_sq = (centres * centres).sum(dim=1)
    for rows in row_chunks(n, chunk_rows):
        for cols in row_chunks(centres.shape[0], chunk_rows):
            block = x[rows] @ centres[cols].T
            block.mul_(-2.0).add_(c_sq[cols][None, :])
            best = block.min(dim=1).values.add_(x_sq[rows]).clamp_(min=0.0)
            torch.minimum(result[rows], best, out=result[rows])
    return result


def argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> int:
    """Position of the largest of ``values``; exact ties broken uniformly by ``rng``.

    Draws from ``rng`` only when there is a tie (so a tie-free run consumes nothing).
    """
    top = values.max()
    ties = np.flatnonzero(values == top)
    if ties.size == 1:
        return int(ties[0])
    return int(ties[rng.integers(ties.size)])


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
        import torch

        xt = to_torch(np.asarray(x, dtype=np.float32), device)
        gt = torch.as_tensor(groups, device=device)
        qt = _torch_index(query_rows, xt)
        x_sq = (xt * xt).sum(dim=1)
        out = torch.full((q,), float("inf"), dtype=torch.float32, device=device)
        for qs in row_chunks(q, chunk_rows):
            rows = qt[qs]
            for cols in row_chunks(n, chunk_rows):
                block = xt[rows] @ xt[cols].T
                block.mul_(-2.0).add_(x_sq[cols][None, :])
                block.masked_fill_(gt[rows][:, None] == gt[cols][None, :], float("inf"))
                best = block.min(dim=1).values.add_(x_sq[rows]).clamp_(min=0.0)
                torch.minimum(out[qs], best, out=out[qs])
        return _to_numpy(out)
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


class TooManyEdgesError(ValueError):
    """A radius graph would exceed its edge budget."""


def radius_graph(
    x: np.ndarray,
    radius: float,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    device: str | None = None,
    max_edges: int | None = None,
):
    """The graph joining every pair of rows closer than ``radius`` (strictly), as a symmetric
    boolean ``scipy.sparse.csr_array`` (N, N) with every self-loop set.

    Exact: every pair is compared, in ``chunk_rows x chunk_rows`` blocks of the upper triangle
    (N^2 / 2 distances, each edge found once, then mirrored), numpy or torch on ``device``.
    Memory: one block plus the edges (int32 indices). ``max_edges`` (directed, self-loops
    included) bounds the graph; going over raises ``TooManyEdgesError`` instead of exhausting
    memory.
    """
    from scipy import sparse

    n = x.shape[0]
    r2 = float(radius) ** 2
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    n_edges = n  # self-loops
    budget = np.inf if max_edges is None else max_edges

    if device is not None:
        import torch

        xt = to_torch(np.asarray(x, dtype=np.float32), device)
        half_sq = 0.5 * (xt * xt).sum(dim=1)

        def hits(rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
            block = (xt[rows] @ xt[cols].T).sub_(half_sq[cols][None, :])
            i, j = torch.nonzero(block > (half_sq[rows] - 0.5 * r2)[:, None], as_tuple=True)
            return _to_numpy(i), _to_numpy(j)
    else:
        # ||a - b||^2 < r^2  <=>  a.b - |b|^2 / 2 > (|a|^2 - r^2) / 2: two passes over a block.
        half_sq = np.float32(0.5) * squared_norms(x)
        buffer = np.empty(min(chunk_rows, n) ** 2, dtype=np.float32)

        def hits(rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
            width = cols.stop - cols.start
            block = buffer[: (rows.stop - rows.start) * width].reshape(-1, width)
            np.matmul(x[rows], x[cols].T, out=block)
            block -= half_sq[cols][None, :]
            found = np.flatnonzero(block > (half_sq[rows] - np.float32(0.5 * r2))[:, None])
            return found // width, found % width  # much faster than a 2-D np.nonzero

    for rows in row_chunks(n, chunk_rows):
        for cols in row_chunks(n - rows.start, chunk_rows):
            cols = slice(cols.start + rows.start, cols.stop + rows.start)  # upper triangle
            i, j = hits(rows, cols)
            if cols.start == rows.start:  # a diagonal block: each pair once, no self-loop
                keep = i < j
                i, j = i[keep], j[keep]
            n_edges += 2 * i.size
            if n_edges > budget:
                raise TooManyEdgesError(
                    f"the radius graph has over {max_edges} edges at radius {radius:.4g}: "
                    "lower the radius or raise the edge budget"
                )
            src.append((i + rows.start).astype(np.int32))
            dst.append((j + cols.start).astype(np.int32))

    loops = np.arange(n, dtype=np.int32)
    half_i = np.concatenate(src) if src else np.empty(0, np.int32)
    half_j = np.concatenate(dst) if dst else np.empty(0, np.int32)
    del src, dst
    i = np.concatenate([half_i, half_j, loops])
    j = np.concatenate([half_j, half_i, loops])
    del half_i, half_j
    return sparse.csr_array((np.ones(i.size, dtype=bool), (i, j)), shape=(n, n))
