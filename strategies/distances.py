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
            return np.flatnonzero(_to_numpy(lhs > threshold[:, None]))
        product, bound = self.screen.product(rows, cols), self.screen.error_bound(rows, cols)
        found = np.flatnonzero(_to_numpy(product >= bf16_bounds(-bound, down=True)[:, None]))
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
        return found[_to_numpy(sure)]


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
