"""Torch twins of the kernels of ``strategies.kernels``, for a torch device (a CUDA GPU, or
``"cpu"``, which the tests use to exercise this code without a GPU).

torch is imported inside each function, so importing this module (and the package) does not
import torch. Results come back as torch tensors on the device (``to_numpy`` brings them home),
except ``min_squared_distance_to_other_group``: numpy in and out.
"""

from __future__ import annotations

import numpy as np

from strategies.chunks import row_chunks


def to_torch(x: np.ndarray, device: str):
    """``x`` as a torch tensor on ``device`` (zero-copy on the CPU; never written to)."""
    import warnings

    import torch

    with warnings.catch_warnings():  # read-only pool views: torch warns, we never write
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(x, device=device)


def to_numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def index(rows: np.ndarray, like):
    import torch

    return torch.as_tensor(rows, dtype=torch.int64, device=like.device)


def min_squared_distance_to(x, centres, chunk_rows: int):
    """Torch twin of ``strategies.kernels.min_squared_distance_to``: (N,) float32 on the
    tensors' device."""
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
    x: np.ndarray, query_rows: np.ndarray, groups: np.ndarray, chunk_rows: int, device: str
) -> np.ndarray:
    """Torch twin of ``strategies.kernels.min_squared_distance_to_other_group``: numpy in and
    out (``query_rows``, ``groups`` int64), the blocks on ``device``."""
    import torch

    n, q = x.shape[0], query_rows.shape[0]
    xt = to_torch(np.asarray(x, dtype=np.float32), device)
    gt = torch.as_tensor(groups, device=device)
    qt = index(query_rows, xt)
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
    return to_numpy(out)
