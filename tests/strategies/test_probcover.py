"""ProbCover: conformance, the radius graph and purity radius against brute force, and equality
of the whole selection with a dense-adjacency reference."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from strategies import INITIAL_POOLS, QueryContext, StrategyError, kernels, probcover
from strategies.clustering import kmeans
from strategies.kernels import min_squared_distance_to_other_group
from strategies.probcover import ProbCover, cluster, l2_normalise, pca_project, purity_delta
from strategies.radius_graph import (
    Bf16Screen,
    TooManyEdgesError,
    bf16_bounds,
    radius_graph,
    radius_neighbours,
)
from tests.strategies.conformance import StrategyConformance


class TestProbCover(StrategyConformance):
    strategy_name = "probcover"


class TestProbCoverInitialPool(StrategyConformance):
    strategy_name = "probcover"
    registry = INITIAL_POOLS


class TestProbCoverApproximate(StrategyConformance):
    strategy_name = "probcover"
    params: ClassVar[dict] = {"approximate": True, "approximate_dim": 4, "chunk_rows": 64, "purity_sample": 100}


# ----------------------------------------------------------------------------- references


def reference_delta(x, n_classes, alpha, rng, grid_size=100, sample=None):
    """The paper's rule by brute force: k-means (the same call, so the same clusters), then
    for each candidate radius the fraction of (sampled) rows whose open ball holds only rows of
    their own cluster; the largest candidate with purity >= alpha."""
    n = x.shape[0]
    groups = kmeans(x, min(n_classes, n), rng).labels
    rows = np.arange(n) if sample is None or sample >= n else rng.choice(n, size=sample, replace=False)
    dist = cdist(x[rows].astype(np.float64), x.astype(np.float64))
    other = groups[rows][:, None] != groups[None, :]
    largest = np.where(other, dist, np.inf).min(axis=1).max()
    candidates = largest * np.arange(1, grid_size + 1) / grid_size
    best = None
    for delta in candidates:
        pure = ~((dist < delta) & other).any(axis=1)
        if pure.mean() >= alpha:
            best = delta
    return best


def reference_probcover(x, labelled, n, rng, delta):
    """Greedy max coverage on the dense adjacency ``cdist < delta`` (float64), recomputing
    every row's count of uncovered neighbours at each step."""
    adjacency = cdist(x.astype(np.float64), x.astype(np.float64)) < delta
    covered = adjacency[labelled].any(axis=0)
    taken = labelled.copy()
    chosen: list[int] = []
    while len(chosen) < n:
        counts = adjacency[:, ~covered].sum(axis=1)
        counts[taken] = -1
        if counts.max() <= 0:
            chosen.extend(rng.choice(np.flatnonzero(~taken), size=n - len(chosen), replace=False))
            break
        ties = np.flatnonzero(counts == counts.max())
        pick = int(ties[0]) if ties.size == 1 else int(ties[rng.integers(ties.size)])
        chosen.append(pick)
        taken[pick] = True
        covered |= adjacency[pick]
    return np.array(chosen)


def blobs(n, d, n_blobs, seed, n_labelled, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(n_blobs, d))
    x = (centres[rng.integers(0, n_blobs, n)] + spread * rng.normal(size=(n, d))).astype(np.float32)
    labelled = np.zeros(n, dtype=bool)
    labelled[rng.choice(n, n_labelled, replace=False)] = True
    return x, labelled


def select(x, labelled, n, seed, n_classes=4, **params):
    context = QueryContext(embeddings=x, labelled=labelled, n_classes=n_classes)
    return ProbCover(**params).select(context, n, np.random.default_rng(seed))


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("device", [None, "cpu"])
@pytest.mark.parametrize(("n", "chunk_rows"), [(257, 16), (600, 4096), (1000, 333)])
def test_radius_graph_equals_dense_threshold(n, chunk_rows, device):
    # Small-integer points and a radius^2 halfway between integers: no distance is near the
    # threshold, so float32 blocks and the float64 reference must agree on every pair.
    rng = np.random.default_rng(n)
    x = rng.integers(-3, 4, size=(n, 5)).astype(np.float32)
    radius = np.sqrt(6.5)
    graph = radius_graph(x, radius, chunk_rows, device)
    dense = cdist(x.astype(np.float64), x.astype(np.float64)) < radius
    np.testing.assert_array_equal(graph.toarray(), dense)
    assert graph.dtype == bool and graph.nnz == dense.sum()


@pytest.mark.parametrize("screen_bf16", [False, True])
def test_radius_graph_on_the_threshold_is_exact_with_and_without_bf16_screening(screen_bf16):
    # radius^2 an integer: many pairs lie exactly on the (open) boundary. Integer coordinates
    # keep float32 exact, so the bf16 screen must send every such pair to the float32 check.
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, size=(700, 6)).astype(np.float32)
    graph = radius_graph(x, np.sqrt(20.0), 128, screen_bf16=screen_bf16)
    sq = cdist(x.astype(np.float64), x.astype(np.float64), "sqeuclidean")
    assert (sq == 20.0).sum() > 1000  # the boundary is crowded
    np.testing.assert_array_equal(graph.toarray(), sq < 20.0)
    assert graph.has_sorted_indices


@pytest.mark.parametrize("d", [3, 64, 500])
def test_bf16_screened_graph_equals_the_float32_graph(d):
    # Continuous data, radius at the median distance: plenty of pairs within the bf16 error
    # bound of it; after their float32 recheck the graph is the float32 one, edge for edge.
    rng = np.random.default_rng(d)
    x = (rng.standard_normal((900, d)) * rng.uniform(0.1, 3.0, size=(1, d))).astype(np.float32)
    radius = float(np.median(cdist(x[:100], x)))
    screened = radius_graph(x, radius, 256, screen_bf16=True)
    plain = radius_graph(x, radius, 256, screen_bf16=False)
    assert (screened != plain).nnz == 0 and screened.nnz == plain.nnz > 900
    dense = cdist(x.astype(np.float64), x.astype(np.float64)) < radius
    assert (plain.toarray() != dense).sum() <= 1e-4 * dense.size  # float32 vs float64 rounding


def test_bf16_screen_error_bound_holds_on_extreme_rows():
    import torch

    rng = np.random.default_rng(1)
    for d in (1, 7, 768, 4096):
        scale = np.exp(rng.uniform(-8, 8, size=(64, 1)))
        x = (rng.standard_normal((64, d)) * scale).astype(np.float32)
        xt = torch.from_numpy(x)
        half_sq = 0.5 * (xt * xt).sum(dim=1)
        threshold = half_sq - float(np.median(half_sq.numpy()))
        screen = Bf16Screen(xt, half_sq, threshold)
        x64 = x.astype(np.float64)
        exact = x64 @ x64.T - half_sq.double().numpy()[None, :] - threshold.double().numpy()[:, None]
        approx = screen.product(slice(0, 64), slice(0, 64)).double().numpy()
        error = np.abs(approx - exact) - 2**-8 * np.abs(approx)  # the result's own rounding
        assert (error <= screen.error_bound(slice(0, 64), slice(0, 64)).double().numpy()[:, None]).all()


def test_bf16_bounds_round_outwards():
    import torch

    values = torch.from_numpy(np.random.default_rng(2).standard_normal(10_000).astype(np.float32) * 1e3)
    down, up = bf16_bounds(values, down=True), bf16_bounds(values, down=False)
    assert (down.float() <= values).all() and (up.float() >= values).all()
    assert ((up.float() - down.float()) <= values.abs() * 2**-7).all()  # at most one step apart


@pytest.mark.parametrize("screen_bf16", [False, True])
def test_radius_neighbours_are_rows_of_the_radius_graph(screen_bf16):
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, size=(500, 5)).astype(np.float32)
    graph = radius_graph(x, np.sqrt(12.0), 64, screen_bf16=screen_bf16)
    rows = np.sort(rng.choice(500, 77, replace=False))
    some = radius_neighbours(x, rows, np.sqrt(12.0), 64, screen_bf16=screen_bf16)
    np.testing.assert_array_equal(some.toarray(), graph[rows].toarray())
    assert (some.indices[some.indptr[:-1]] == rows).all()  # each row's own column first
    assert radius_neighbours(x, np.array([], np.int64), 1.0).shape == (0, 500)
    with pytest.raises(TooManyEdgesError):
        radius_neighbours(x, rows, 100.0, 64, max_edges=1000)


def test_radius_graph_edge_budget():
    x = np.zeros((100, 2), dtype=np.float32)
    with pytest.raises(TooManyEdgesError, match="edges"):
        radius_graph(x, 1.0, 16, max_edges=5000)
    x_far = np.arange(100, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    assert radius_graph(x_far, 1.0, 16, max_edges=100).nnz == 100  # self-loops only


@pytest.mark.parametrize("device", [None, "cpu"])
def test_min_distance_to_other_group(device):
    x, _ = blobs(500, 6, 5, seed=1, n_labelled=0)
    groups = np.random.default_rng(0).integers(0, 3, 500)
    rows = np.array([0, 7, 499, 250, 3])
    got = min_squared_distance_to_other_group(x, rows, groups, 64, device)
    full = cdist(x[rows].astype(np.float64), x.astype(np.float64), "sqeuclidean")
    full[groups[rows][:, None] == groups[None, :]] = np.inf
    np.testing.assert_allclose(got, full.min(axis=1), rtol=1e-4, atol=1e-3)
    one_group = min_squared_distance_to_other_group(x, rows, np.zeros(500, np.int64), 64, device)
    assert np.isinf(one_group).all()


@pytest.mark.parametrize(
    ("n", "d", "n_classes", "alpha", "sample"),
    [(600, 8, 4, 0.95, None), (1500, 16, 10, 0.9, None), (2000, 4, 3, 0.95, 700), (400, 2, 6, 0.5, None)],
)
def test_purity_delta_matches_brute_force(n, d, n_classes, alpha, sample):
    x, _ = blobs(n, d, n_classes, seed=d, n_labelled=0)
    rng = np.random.default_rng(2)
    got = purity_delta(x, cluster(x, n_classes, rng).labels, alpha, rng, 100, sample, 256)
    expected = reference_delta(x, n_classes, alpha, np.random.default_rng(2), 100, sample)
    assert got == pytest.approx(expected, rel=1e-5)


def test_purity_delta_without_a_grid_value_uses_the_exact_quantile():
    x, _ = blobs(300, 4, 3, seed=0, n_labelled=0)
    # One candidate (the largest distance to another cluster): purity there is ~1/N < alpha.
    groups = kmeans(x, 3, np.random.default_rng(0)).labels
    delta = purity_delta(x, groups, 0.95, np.random.default_rng(0), grid_size=1)
    dist = cdist(x.astype(np.float64), x.astype(np.float64))
    to_other = np.where(groups[:, None] != groups[None, :], dist, np.inf).min(axis=1)
    assert np.mean(to_other >= delta) >= 0.95  # pure enough ...
    assert np.mean(to_other >= delta * (1 + 1e-5)) < 0.95  # ... and the largest such radius


# ----------------------------------------------------------------------------- selection


@pytest.fixture(params=["whole graph", "uncovered balls"])
def graph_route(request, monkeypatch):
    """Run a selection test through both ways of building the balls ProbCover needs."""
    monkeypatch.setattr(probcover, "FULL_GRAPH_ABOVE", 0.0 if request.param == "whole graph" else 1.0)
    return request.param


@pytest.mark.parametrize(
    ("n", "d", "n_labelled", "batch", "radius2"),
    [(300, 3, 10, 30, 2.5), (1000, 5, 60, 50, 6.5), (2000, 2, 0, 40, 1.5), (500, 4, 5, 200, 12.5)],
)
def test_fixed_delta_matches_reference_exactly(n, d, n_labelled, batch, radius2, graph_route):
    # Integer points, radius^2 between integers: identical graphs; integer coverage counts tie
    # often, so this also checks that ties consume the rng the same way. The last case covers
    # the pool before the batch is full and exercises the uniform fallback.
    rng = np.random.default_rng(n + d)
    x = rng.integers(-2, 3, size=(n, d)).astype(np.float32)
    labelled = np.zeros(n, dtype=bool)
    labelled[rng.choice(n, n_labelled, replace=False)] = True
    delta = float(np.sqrt(radius2))
    fast = select(x, labelled, batch, seed=9, delta=delta, normalize=False, chunk_rows=97)
    ref = reference_probcover(x, labelled, batch, np.random.default_rng(9), delta)
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize(
    ("n", "d", "n_classes", "n_labelled", "batch", "sample"),
    [(500, 6, 4, 20, 25, None), (1200, 16, 8, 0, 40, None), (2000, 10, 5, 50, 30, 600)],
)
def test_purity_delta_selection_matches_reference(n, d, n_classes, n_labelled, batch, sample, graph_route):
    # Continuous data: the graphs agree unless some pair lies within float32 rounding of delta.
    x, labelled = blobs(n, d, n_classes, seed=n, n_labelled=n_labelled)
    fast = select(
        x, labelled, batch, seed=4, n_classes=n_classes, normalize=False, purity_sample=sample,
        chunk_rows=300,
    )
    rng = np.random.default_rng(4)
    delta = reference_delta(x, n_classes, 0.95, rng, 100, sample)
    ref = reference_probcover(x, labelled, batch, rng, delta)
    np.testing.assert_array_equal(fast, ref)


def test_normalised_selection_matches_reference():
    x, labelled = blobs(800, 12, 5, seed=3, n_labelled=30, spread=2.0)
    fast = select(x, labelled, 40, seed=1, delta=0.35)
    unit = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    ref = reference_probcover(unit, labelled, 40, np.random.default_rng(1), 0.35)
    np.testing.assert_array_equal(fast, ref)


def test_torch_kernels_match_numpy(monkeypatch):
    x, labelled = blobs(700, 8, 4, seed=5, n_labelled=20)
    expected = select(x, labelled, 30, seed=2, chunk_rows=128)
    monkeypatch.setattr(kernels, "kernel_device", lambda device: "cpu")  # torch on the CPU
    np.testing.assert_array_equal(select(x, labelled, 30, seed=2, chunk_rows=128), expected)


def test_first_pick_covers_the_densest_ball():
    x = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]], dtype=np.float32)
    labelled = np.zeros(6, dtype=bool)
    chosen = select(x, labelled, 3, seed=0, delta=0.15, normalize=False)
    assert chosen[0] == 1  # its ball holds rows 0, 1 and 2
    assert set(chosen[1:]) <= {3, 4, 5}


def test_labelled_coverage_is_removed_first():
    x = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]], dtype=np.float32)
    labelled = np.array([False, True, False, False, False, False])
    chosen = select(x, labelled, 1, seed=0, delta=0.15, normalize=False)
    assert chosen[0] in (3, 4)  # rows 0-2 are covered by the labelled row 1


def test_edge_budget_is_a_strategy_error():
    x, labelled = blobs(300, 4, 2, seed=0, n_labelled=5)
    with pytest.raises(StrategyError, match="max_edges"):
        select(x, labelled, 5, seed=0, delta=100.0, normalize=False, max_edges=1000)


def test_l2_normalise():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(l2_normalise(x), [[0.6, 0.8], [0.0, 0.0]])


def test_pca_projection_shrinks_distances_and_keeps_them_at_full_rank():
    x, _ = blobs(400, 10, 3, seed=2, n_labelled=0)
    full = cdist(x.astype(np.float64), x.astype(np.float64))
    projected = pca_project(x, 3, chunk_rows=64)
    assert projected.shape == (400, 3)
    assert (cdist(projected.astype(np.float64), projected.astype(np.float64)) <= full + 1e-4).all()
    np.testing.assert_allclose(cdist(pca_project(x, 10), pca_project(x, 10)), full, atol=1e-4)


def test_approximate_selection_matches_reference_on_the_projection():
    from sklearn.decomposition import PCA

    x, labelled = blobs(900, 24, 6, seed=8, n_labelled=20, spread=2.0)
    fast = select(x, labelled, 30, seed=3, delta=0.3, approximate=True, approximate_dim=5)
    unit = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    projected = PCA(n_components=5, svd_solver="full").fit_transform(unit)
    ref = reference_probcover(projected, labelled, 30, np.random.default_rng(3), 0.3)
    np.testing.assert_array_equal(fast, ref)


def test_fixed_delta_builds_the_graph_once_per_pool_and_radius(monkeypatch):
    # A trajectory's queries on one pool: the same picks as the reference at every query,
    # one radius graph for all of them, another for another radius.
    builds = []
    build = probcover.radius_graph
    monkeypatch.setattr(probcover, "radius_graph", lambda *a, **k: builds.append(a[1]) or build(*a, **k))
    x, labelled = blobs(600, 6, 4, seed=11, n_labelled=10)
    for query in range(3):
        fast = select(x, labelled, 20, seed=query, delta=1.2, normalize=False, chunk_rows=128)
        ref = reference_probcover(x, labelled, 20, np.random.default_rng(query), 1.2)
        np.testing.assert_array_equal(fast, ref)
        labelled = labelled.copy()
        labelled[fast] = True
    assert builds == [1.2]
    select(x, labelled, 20, seed=0, delta=1.3, normalize=False, chunk_rows=128)
    assert builds == [1.2, 1.3]


def test_pool_delta_variant_chooses_delta_once_with_a_fixed_seed(monkeypatch):
    # delta_per: pool = the purity rule with k-means and sample seeded by POOL_DELTA_SEED,
    # whatever the trial's rng; one radius and one graph for every query on the pool.
    builds = []
    build = probcover.radius_graph
    monkeypatch.setattr(probcover, "radius_graph", lambda *a, **k: builds.append(a[1]) or build(*a, **k))
    x, labelled = blobs(900, 8, 5, seed=12, n_labelled=15)
    delta = reference_delta(x, 5, 0.95, np.random.default_rng(probcover.POOL_DELTA_SEED), 100, 400)
    for query in range(3):
        fast = select(x, labelled, 15, seed=query, n_classes=5, normalize=False, purity_sample=400,
                      delta_per="pool")
        ref = reference_probcover(x, labelled, 15, np.random.default_rng(query), delta)
        np.testing.assert_array_equal(fast, ref)
        labelled = labelled.copy()
        labelled[fast] = True
    assert len(builds) == 1 and builds[0] == pytest.approx(delta)
