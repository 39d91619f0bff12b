"""Coreset (k-center greedy): conformance, and equality with a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from strategies import INITIAL_POOLS, QueryContext, kernels
from strategies.coreset import Coreset, k_center_greedy
from strategies.kernels import PoolProducts
from tests.strategies.conformance import StrategyConformance


class TestCoreset(StrategyConformance):
    strategy_name = "coreset"


class TestCoresetInitialPool(StrategyConformance):
    strategy_name = "coreset"
    registry = INITIAL_POOLS


def reference_k_center(x: np.ndarray, labelled: np.ndarray, n: int, rng: np.random.Generator):
    """Sener & Savarese's greedy from the full N x N float64 distance matrix.

    Returns the picks and, for each step, the objective (min squared distance of every row to
    the labelled-or-chosen rows, -1 where not pickable) the step maximised.
    """
    dist = cdist(x.astype(np.float64), x.astype(np.float64), "sqeuclidean")
    centres = list(np.flatnonzero(labelled))
    chosen: list[int] = []
    objectives = []
    if not centres:  # cold start: the first centre is uniform over the pool
        first = int(rng.integers(x.shape[0]))
        chosen.append(first)
        centres.append(first)
    while len(chosen) < n:
        objective = dist[:, centres].min(axis=1)
        objective[labelled] = -1
        objective[chosen] = -1
        ties = np.flatnonzero(objective == objective.max())
        pick = int(ties[0]) if ties.size == 1 else int(ties[rng.integers(ties.size)])
        objectives.append((len(chosen), objective))
        chosen.append(pick)
        centres.append(pick)
    return np.array(chosen), dict(objectives)


def assert_same_or_float_near_tie(fast: np.ndarray, ref: np.ndarray, objectives: dict) -> None:
    """Equal picks; if float32 rounding makes them part at a near-tie, the fast pick must be as
    far as the reference's to 1e-5 (after that the sequences legitimately differ)."""
    for step, (f, r) in enumerate(zip(fast, ref, strict=True)):
        if f != r:
            objective = objectives[step]
            assert objective[f] >= objective[r] * (1 - 1e-5), (step, f, r)
            return


def integer_pool(n: int, d: int, seed: int, n_labelled: int):
    """Small-integer coordinates: every squared distance is exact in float32, ties abound."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(n, d)).astype(np.float32)
    labelled = np.zeros(n, dtype=bool)
    labelled[rng.choice(n, n_labelled, replace=False)] = True
    return x, labelled


def gaussian_pool(n: int, d: int, seed: int, n_labelled: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(8, d))
    x = (centres[rng.integers(0, 8, n)] + rng.normal(size=(n, d))).astype(np.float32)
    labelled = np.zeros(n, dtype=bool)
    labelled[rng.choice(n, n_labelled, replace=False)] = True
    return x, labelled


def select(x, labelled, n, seed, **params):
    context = QueryContext(embeddings=x, labelled=labelled, n_classes=2)
    return Coreset(**params).select(context, n, np.random.default_rng(seed))


@pytest.mark.parametrize(
    ("n", "d", "n_labelled", "batch", "chunk_rows"),
    [(300, 3, 10, 40, 7), (1000, 8, 50, 60, 128), (2000, 2, 0, 50, 8192), (500, 16, 1, 30, 64)],
)
def test_integer_pool_matches_reference_exactly(n, d, n_labelled, batch, chunk_rows):
    # Exact arithmetic in both, so the rng breaks the (many) exact ties identically.
    x, labelled = integer_pool(n, d, seed=n + d, n_labelled=n_labelled)
    fast = select(x, labelled, batch, seed=11, chunk_rows=chunk_rows)
    ref, _ = reference_k_center(x, labelled, batch, np.random.default_rng(11))
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize(
    ("n", "d", "n_labelled", "batch"), [(400, 5, 20, 50), (1500, 32, 100, 80), (2000, 64, 0, 60)]
)
def test_gaussian_pool_matches_reference(n, d, n_labelled, batch):
    x, labelled = gaussian_pool(n, d, seed=d, n_labelled=n_labelled)
    fast = select(x, labelled, batch, seed=3, chunk_rows=256)
    ref, objectives = reference_k_center(x, labelled, batch, np.random.default_rng(3))
    assert_same_or_float_near_tie(fast, ref, objectives)


def test_torch_kernels_match_numpy(monkeypatch):
    x, labelled = gaussian_pool(700, 12, seed=1, n_labelled=30)
    numpy_picks = select(x, labelled, 40, seed=2, chunk_rows=100)
    xi, li = integer_pool(700, 4, seed=2, n_labelled=0)
    numpy_int = select(xi, li, 40, seed=2, chunk_rows=100)
    monkeypatch.setattr(kernels, "kernel_device", lambda device: "cpu")  # torch on the CPU
    np.testing.assert_array_equal(select(xi, li, 40, seed=2, chunk_rows=100), numpy_int)
    torch_picks = select(x, labelled, 40, seed=2, chunk_rows=100)
    _, objectives = reference_k_center(x, labelled, 40, np.random.default_rng(2))
    assert_same_or_float_near_tie(torch_picks, numpy_picks, objectives)


def test_pool_products_torch_equals_numpy():
    x, _ = gaussian_pool(300, 10, seed=4, n_labelled=1)
    rows = np.array([3, 17, 250])
    host, torch_cpu = PoolProducts(x), PoolProducts(x, device="cpu")
    np.testing.assert_allclose(torch_cpu.dot_row(5), host.dot_row(5), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(
        torch_cpu.min_squared_distance_to_rows(rows, 64), host.min_squared_distance_to_rows(rows, 64),
        rtol=1e-4, atol=1e-3,
    )
    full = cdist(x.astype(np.float64), x[rows].astype(np.float64), "sqeuclidean").min(axis=1)
    np.testing.assert_allclose(host.min_squared_distance_to_rows(rows, 64), full, rtol=1e-4, atol=1e-3)
    assert np.isinf(host.min_squared_distance_to_rows(np.array([], dtype=np.int64))).all()


def test_first_pick_is_the_farthest_from_the_labelled_rows():
    x = np.array([[0.0], [1.0], [2.0], [10.0], [4.0]], dtype=np.float32)
    labelled = np.array([True, False, False, False, False])
    np.testing.assert_array_equal(select(x, labelled, 3, seed=0), [3, 4, 2])


def test_duplicates_of_the_labelled_rows_are_taken_last():
    x = np.zeros((50, 3), dtype=np.float32)
    x[:5] = np.eye(5, 3) * 5  # the rest coincide with the origin
    labelled = np.zeros(50, dtype=bool)
    labelled[10] = True
    chosen = select(x, labelled, 10, seed=0)
    assert set(chosen[:3]) == {0, 1, 2}
    assert not labelled[chosen].any() and np.unique(chosen).size == 10


def test_kernel_device_falls_back_to_numpy():
    import torch

    assert kernels.kernel_device("cpu") is None and kernels.kernel_device(None) is None
    assert kernels.kernel_device("cuda") == ("cuda" if torch.cuda.is_available() else None)
    x, labelled = gaussian_pool(200, 4, seed=0, n_labelled=5)
    context = QueryContext(embeddings=x, labelled=labelled, n_classes=2, device="cuda")
    expected = select(x, labelled, 10, seed=0)
    np.testing.assert_array_equal(Coreset().select(context, 10, np.random.default_rng(0)), expected)


@pytest.mark.parametrize("pool", [integer_pool, gaussian_pool])
@pytest.mark.parametrize(
    ("first_pass_rows", "shortlist_rows", "chunk_rows"), [(1, 1, 7), (3, 10, 64), (10, 4096, 1000)]
)
def test_lazy_first_pass_over_few_labelled_rows_gives_the_same_picks(
    pool, first_pass_rows, shortlist_rows, chunk_rows
):
    # Bounds from a few labelled rows, refined only where they reach the top, searched on a
    # shortlist that has to widen: same picks as the full pass and as the brute-force
    # reference (exact ties included, on integer pools).
    x, labelled = pool(1200, 6, seed=first_pass_rows, n_labelled=90)
    lazy = k_center_greedy(
        PoolProducts(x), labelled, 70, np.random.default_rng(5), chunk_rows, first_pass_rows, shortlist_rows
    )
    full = k_center_greedy(PoolProducts(x), labelled, 70, np.random.default_rng(5), chunk_rows, 10**6)
    ref, objectives = reference_k_center(x, labelled, 70, np.random.default_rng(5))
    if pool is integer_pool:
        np.testing.assert_array_equal(lazy, ref)
        np.testing.assert_array_equal(full, ref)
    else:
        assert_same_or_float_near_tie(lazy, ref, objectives)
        assert_same_or_float_near_tie(full, ref, objectives)


@pytest.mark.parametrize("pool", [integer_pool, gaussian_pool])
def test_cold_start_on_a_narrow_shortlist_matches_the_reference(pool):
    x, labelled = pool(900, 5, seed=3, n_labelled=0)
    fast = k_center_greedy(PoolProducts(x), labelled, 60, np.random.default_rng(8), 64, shortlist_rows=5)
    ref, objectives = reference_k_center(x, labelled, 60, np.random.default_rng(8))
    assert_same_or_float_near_tie(fast, ref, objectives)
    if pool is integer_pool:
        np.testing.assert_array_equal(fast, ref)
