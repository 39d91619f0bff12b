"""The radius graph of ProbCover: which pairs of pool rows are closer than a radius, exactly,
as a sparse CSR, in blocks (a bfloat16 screen with a proven error bound where the CPU
multiplies bfloat16 natively, float32 for the pairs it cannot decide).

Nothing here holds an N x N matrix: work proceeds in ``chunk_rows x chunk_rows`` blocks.
"""

from __future__ import annotations

import numpy as np

from strategies.chunks import DEFAULT_CHUNK_ROWS, row_chunks
from strategies.torch_kernels import to_numpy, to_torch


class TooManyEdgesError(ValueError):
    """A radius graph would exceed its edge budget."""


BF16_UNIT_ROUNDOFF = 2.0**-8
"""Relative rounding error of a float32 value stored as bfloat16 (8 significant bits)."""


def cpu_bf16_is_fast() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX, through oneDNN)."""
    try:
        import torch

        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (ImportError, AttributeError, RuntimeError):  # pragma: no cover - older torch builds
        return False


class Bf16Screen:
    """Sign of ``x_i.x_j - |x_j|^2/2 - t_i`` for blocks of row pairs, from one bfloat16 product
    with a proven per-pair error bound: what it cannot decide is left to float32.

    Rows are multiplied as ``[~x_i, 1, 1, -t_i', -t_i''] . [~x_j, -h_j', -h_j'', 1, 1]``, where
    ``~x = bf16(x)`` and every float32 scalar is split into two bfloat16 (``h' + h'' = h`` up to
    ``u^2 h``): the product is the quantity itself, near 0 at the decision, so rounding the
    result (monotone, 0 exact) cannot flip a sign beyond the bound. The bound: with ``e = x -
    ~x`` (exact in float32), ``|~x_i.~x_j - x_i.x_j| <= |~x_i||e_j| + |e_i|(|~x_j| + |e_j|)``
    (Cauchy-Schwarz on the actual rounding errors, several times tighter than ``2u|x_i||x_j|``),
    plus ``u^2`` of the split scalars, plus float32 accumulation, ``(depth + 4) 2^-23`` of the
    sum of the terms' magnitudes (``u = 2^-8``), plus ``2^-126`` an entry where subnormals may be
    flushed to zero, all times 1.01.
    """

    def __init__(self, xt, half_sq, threshold) -> None:
        import torch

        low = xt.to(torch.bfloat16)
        low_f = low.float()
        self.norm = torch.linalg.vector_norm(low_f, dim=1)
        self.err = torch.linalg.vector_norm(xt - low_f, dim=1)
        self.half_sq, self.threshold = half_sq, threshold
        ones = torch.ones((xt.shape[0], 2), dtype=torch.bfloat16, device=xt.device)
        self.rows = torch.cat([low, ones, split_bf16(-threshold)], dim=1)
        self.cols = torch.cat([low, split_bf16(-half_sq), ones], dim=1)
        self.depth = xt.shape[1] + 4
        self.accumulation = self.depth * 2.0**-23 * (1 + BF16_UNIT_ROUNDOFF) ** 2

    def product(self, rows: slice, cols: slice):
        """(rows x cols) bfloat16 approximations of ``x_i.x_j - |x_j|^2/2 - t_i``."""
        return self.rows[rows] @ self.cols[cols].T

    def error_bound(self, rows: slice, cols: slice):
        """(rows,) float32: per row, a bound on the product's error over every column of the block."""
        u2 = BF16_UNIT_ROUNDOFF**2
        col_norm, col_err, col_sq = self.norm[cols].max(), self.err[cols].max(), self.half_sq[cols].max()
        scalars = col_sq + self.threshold[rows].abs()
        inputs = self.norm[rows] * col_err + self.err[rows] * (col_norm + col_err)
        summed = self.accumulation * (self.norm[rows] * col_norm + scalars)
        # Subnormal inputs or products may be flushed to zero: at most 2^-126 an entry.
        flushed = self.depth * 2.0**-126 * (self.norm[rows] + col_norm + 1.0)
        return 1.01 * (inputs + summed + 2 * u2 * scalars + flushed) + 1e-30


def split_bf16(values):
    """(N, 2) bfloat16 ``[hi, lo]`` with ``hi + lo = values`` up to ``u^2 |values|``."""
    import torch

    high = values.to(torch.bfloat16)
    return torch.stack([high, (values - high.float()).to(torch.bfloat16)], dim=1)


def bf16_bounds(values, down: bool):
    """``values`` (float32 torch tensor) rounded to bfloat16 towards -inf (``down``) or +inf,
    so that ``result <= values`` (or ``>=``) holds exactly."""
    import torch

    rounded = values.to(torch.bfloat16)
    back = rounded.float()
    wrong = back > values if down else back < values
    if bool(wrong.any()):
        step = torch.nextafter(rounded[wrong], torch.full_like(rounded[wrong], -np.inf if down else np.inf))
        rounded[wrong] = step
    return rounded


class RadiusPairs:
    """Which pairs of rows of ``x`` are closer than ``radius`` (strictly), a block at a time.

    ``||x_i - x_j||^2 < r^2`` is decided as ``x_i.x_j - |x_j|^2/2 > |x_i|^2/2 - r^2/2`` in
    torch on ``device`` (None: the CPU). ``screen_bf16`` (None: when the device is the CPU and
    it multiplies bfloat16 natively, about twice float32's speed) first compares a bfloat16
    product with a proven error bound (``Bf16Screen``); the pairs it leaves undecided, those
    within the bound of the radius, are recomputed in float32 one by one, so the decisions are
    the float32 ones (and do not depend on how pairs are grouped into blocks).
    """

    def __init__(self, x: np.ndarray, radius: float, device: str | None = None,
                 screen_bf16: bool | None = None) -> None:
        import torch

        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.on_cpu = device is None or str(device) == "cpu"
        if screen_bf16 is None:
            screen_bf16 = self.on_cpu and cpu_bf16_is_fast()
        self.xt = to_torch(self.x, "cpu" if device is None else device)
        self.half_sq = 0.5 * (self.xt * self.xt).sum(dim=1)
        self.threshold = self.half_sq - 0.5 * float(radius) ** 2
        self.screen = Bf16Screen(self.xt, self.half_sq, self.threshold) if screen_bf16 else None
        self._torch = torch

    def block(self, rows: slice | np.ndarray, cols: slice) -> np.ndarray:
        """Row-major flat positions, in the (rows x cols) block, of the pairs closer than the
        radius. ``rows``: a slice or an int64 array of row indices."""
        torch, xt, half_sq = self._torch, self.xt, self.half_sq
        if not isinstance(rows, slice):
            rows = torch.as_tensor(rows, device=xt.device)
        width = cols.stop - cols.start
        threshold = self.threshold[rows]
        if self.screen is None:
            lhs = (xt[rows] @ xt[cols].T).sub_(half_sq[cols][None, :])
            return np.flatnonzero(to_numpy(lhs > threshold[:, None]))
        product, bound = self.screen.product(rows, cols), self.screen.error_bound(rows, cols)
        found = np.flatnonzero(to_numpy(product >= bf16_bounds(-bound, down=True)[:, None]))
        pos = torch.as_tensor(found, device=xt.device)  # the edges, and pairs near the radius
        i, j = pos // width, pos % width
        sure = product.view(-1)[pos] > bf16_bounds(bound, down=False)[i]
        check = torch.nonzero(~sure).flatten()
        if check.numel():  # within the bound of the radius: decide in float32
            ri = i[check] + rows.start if isinstance(rows, slice) else rows[i[check]]
            cj = j[check] + cols.start
            if self.on_cpu:  # numpy's gathers are several times faster than torch's here
                dots = torch.from_numpy(np.einsum("ij,ij->i", self.x[ri.numpy()], self.x[cj.numpy()]))
            else:
                dots = (xt[ri] * xt[cj]).sum(dim=1)
            sure[check] = dots.sub_(half_sq[cj]) > threshold[i[check]]
        return found[to_numpy(sure)]


def _edge_budget_error(max_edges, radius: float) -> TooManyEdgesError:
    return TooManyEdgesError(
        f"the radius graph has over {max_edges} edges at radius {radius:.4g}: "
        "lower the radius or raise the edge budget"
    )


def _rows_to_csr(local: list[np.ndarray], targets: list[np.ndarray], height: int):
    """(indices, counts) of a CSR block row from its (row within the block row, column) pairs,
    appended in the order each row's columns should keep (a stable radix sort by row)."""
    local_rows = np.concatenate(local)
    order = np.argsort(local_rows, kind="stable")
    return np.concatenate(targets)[order], np.bincount(local_rows, minlength=height)


def _csr(indices: list[np.ndarray], counts: list[np.ndarray], shape: tuple[int, int]):
    from scipy import sparse

    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.concatenate(counts), out=indptr[1:])
    if indptr[-1] < 2**31:
        indptr = indptr.astype(np.int32)
    flat = np.concatenate(indices) if indices else np.empty(0, np.int32)
    return sparse.csr_array((np.ones(flat.size, dtype=bool), flat, indptr), shape=shape)


def radius_graph(
    x: np.ndarray | RadiusPairs,
    radius: float,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    device: str | None = None,
    max_edges: int | None = None,
    screen_bf16: bool | None = None,
):
    """The graph joining every pair of rows closer than ``radius`` (strictly), as a symmetric
    boolean ``scipy.sparse.csr_array`` (N, N) with every self-loop set and sorted rows.

    Exact (``RadiusPairs``): every pair of the upper triangle is compared, in ``chunk_rows x
    chunk_rows`` blocks (N^2 / 2 distances). The upper triangle's edges of a block row are
    sorted by a radix sort into a CSR, then mirrored by scipy. Memory: one block, and about
    three times the graph's int32 indices while mirroring. ``max_edges`` (directed, self-loops
    included) bounds the graph; going over raises ``TooManyEdgesError`` instead of exhausting
    memory. ``x`` may be a ``RadiusPairs`` built for the same radius, to share its set-up.
    """
    pairs = x if isinstance(x, RadiusPairs) else RadiusPairs(x, radius, device, screen_bf16)
    n = pairs.x.shape[0]
    budget = np.inf if max_edges is None else max_edges
    indices: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    n_edges = n  # self-loops
    row_type = np.int16 if chunk_rows <= 2**15 else np.int32
    for rows in row_chunks(n, chunk_rows):
        height = rows.stop - rows.start
        local = [np.arange(height, dtype=row_type)]  # self-loops first: the smallest columns
        targets = [np.arange(rows.start, rows.stop, dtype=np.int32)]
        for cols in row_chunks(n - rows.start, chunk_rows):
            cols = slice(cols.start + rows.start, cols.stop + rows.start)  # upper triangle
            width = cols.stop - cols.start
            found = pairs.block(rows, cols)
            i, j = found // width, found % width
            if cols.start == rows.start:  # a diagonal block: each pair once, i < j
                keep = i < j
                i, j = i[keep], j[keep]
            n_edges += 2 * i.size
            if n_edges > budget:
                raise _edge_budget_error(max_edges, radius)
            local.append(i.astype(row_type))
            targets.append((j + cols.start).astype(np.int32))
        block_indices, block_counts = _rows_to_csr(local, targets, height)
        indices.append(block_indices)
        counts.append(block_counts)
        del local, targets
    upper = _csr(indices, counts, (n, n))
    del indices
    return (upper + upper.T).tocsr()  # scipy's transpose and sorted merge, in C++


def radius_neighbours(
    x: np.ndarray | RadiusPairs,
    rows: np.ndarray,
    radius: float,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    device: str | None = None,
    max_edges: int | None = None,
    screen_bf16: bool | None = None,
):
    """(len(rows), N) boolean ``scipy.sparse.csr_array``: row k marks every row of ``x`` closer
    than ``radius`` (strictly) to ``x[rows[k]]``, itself included (first, then ascending).

    The rows of the ``radius_graph`` for a subset of the pool: len(rows) x N distances, in
    ``chunk_rows x chunk_rows`` blocks, with the same decisions (``RadiusPairs``). ``max_edges``
    bounds the entries (``TooManyEdgesError``). ``x`` may be a ``RadiusPairs`` built for the
    same radius, to share its set-up.
    """
    pairs = x if isinstance(x, RadiusPairs) else RadiusPairs(x, radius, device, screen_bf16)
    n = pairs.x.shape[0]
    rows = np.asarray(rows, dtype=np.int64)
    budget = np.inf if max_edges is None else max_edges
    indices: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    n_edges = 0
    row_type = np.int16 if chunk_rows <= 2**15 else np.int32
    for block in row_chunks(rows.size, chunk_rows):
        ids = rows[block]
        local = [np.arange(ids.size, dtype=row_type)]  # self-loops first
        targets = [ids.astype(np.int32)]
        n_edges += ids.size
        for cols in row_chunks(n, chunk_rows):
            width = cols.stop - cols.start
            found = pairs.block(ids, cols)
            i, j = found // width, found % width + cols.start
            keep = j != ids[i]  # the self-loops are already in
            i, j = i[keep], j[keep]
            n_edges += i.size
            if n_edges > budget:
                raise _edge_budget_error(max_edges, radius)
            local.append(i.astype(row_type))
            targets.append(j.astype(np.int32))
        block_indices, block_counts = _rows_to_csr(local, targets, ids.size)
        indices.append(block_indices)
        counts.append(block_counts)
    return _csr(indices, counts, (rows.size, n))
