"""Badge: conformance, and equality with a reference that materialises the gradient embeddings."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import softmax

from strategies import QueryContext, kernels
from strategies.badge import Badge, gradient_factors
from tests.strategies.conformance import StrategyConformance


class TestBadge(StrategyConformance):
    strategy_name = "badge"


class TestBadgeSampledFirst(StrategyConformance):
    strategy_name = "badge"
    params: ClassVar[dict] = {"first": "sample"}


def reference_badge(x, p, labelled, n, rng, first="max_norm"):
    """Ash et al.'s ``init_centers`` on the explicit N x (C*D) gradient embeddings, float64.

    D^2 sampling by inverse CDF: one ``rng.random()`` scaled by the total weight, the first
    position whose cumulative weight exceeds it (the fast code consumes the rng the same way).
    """
    n_rows, n_classes = p.shape
    p = p.astype(np.float64)
    yhat = p.argmax(axis=1)
    g = ((p - np.eye(n_classes)[yhat])[:, :, None] * x.astype(np.float64)[:, None, :]).reshape(n_rows, -1)

    def draw(weights):
        cumulative = np.cumsum(weights)
        if cumulative[-1] <= 0:
            return None
        pos = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        return pos if pos < n_rows else int(np.flatnonzero(weights > 0)[-1])

    norms = (g**2).sum(axis=1)
    if first == "max_norm":
        scores = np.where(labelled, -1.0, norms)
        ties = np.flatnonzero(scores == scores.max())
        chosen = [int(ties[0]) if ties.size == 1 else int(ties[rng.integers(ties.size)])]
    else:
        pos = draw(np.where(labelled, 0.0, norms))
        chosen = [pos if pos is not None else int(rng.choice(np.flatnonzero(~labelled)))]
    while len(chosen) < n:
        d2 = cdist(g, g[chosen], "sqeuclidean").min(axis=1)
        d2[labelled] = 0.0
        d2[chosen] = 0.0
        pos = draw(d2)
        if pos is None:
            rest = np.flatnonzero(~labelled & ~np.isin(np.arange(n_rows), chosen))
            chosen.extend(rng.choice(rest, size=n - len(chosen), replace=False).tolist())
            break
        chosen.append(pos)
    return np.array(chosen)


def dyadic_problem(n, d, c, seed, n_labelled):
    """Integer embeddings and probabilities in multiples of 1/8: all of Badge's arithmetic is
    exact in float32 and float64 alike, and ties (one-hot rows, equal norms) are common."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(n, d)).astype(np.float32)
    p = (rng.multinomial(8, rng.dirichlet(np.full(c, 0.5)), size=n) / 8).astype(np.float32)
    labelled = np.zeros(n, dtype=bool)
    labelled[rng.choice(n, n_labelled, replace=False)] = True
    return x, p, labelled


def gaussian_problem(n, d, c, seed, n_labelled):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    p = softmax(x @ rng.normal(size=(d, c)).astype(np.float32), axis=1).astype(np.float32)
    labelled = np.zeros(n, dtype=bool)
    labelled[rng.choice(n, n_labelled, replace=False)] = True
    return x, p, labelled


def select(x, p, labelled, n, seed, **params):
    context = QueryContext(embeddings=x, labelled=labelled, n_classes=p.shape[1], probabilities=p)
    return Badge(**params).select(context, n, np.random.default_rng(seed))


CASES = [
    (300, 4, 3, 20, 30), (1000, 8, 10, 50, 60), (2000, 16, 2, 100, 40), (600, 3, 25, 1, 50),
    (200, 1, 2, 10, 80),  # fewer distinct gradients than the batch: the uniform fallback runs
]


@pytest.mark.parametrize("first", ["max_norm", "sample"])
@pytest.mark.parametrize(("n", "d", "c", "n_labelled", "batch"), CASES)
def test_dyadic_problem_matches_reference_exactly(n, d, c, n_labelled, batch, first):
    x, p, labelled = dyadic_problem(n, d, c, seed=n + c, n_labelled=n_labelled)
    fast = select(x, p, labelled, batch, seed=5, first=first)
    ref = reference_badge(x, p, labelled, batch, np.random.default_rng(5), first)
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize("first", ["max_norm", "sample"])
@pytest.mark.parametrize(("n", "d", "c", "n_labelled", "batch"), CASES[:4])
def test_gaussian_problem_matches_reference(n, d, c, n_labelled, batch, first):
    # float32 vs float64 differ by ~1e-7 of ||g||^2; a draw could only part if the uniform fell
    # that close to a cumulative boundary. Not the last case: with D = 1 and C = 2 all gradients
    # lie on one line, and after 50 picks the remaining squared distances are as small as the
    # float32 rounding of the norms in the distance identity (the dyadic test covers it exactly).
    x, p, labelled = gaussian_problem(n, d, c, seed=d + c, n_labelled=n_labelled)
    fast = select(x, p, labelled, batch, seed=7, first=first)
    ref = reference_badge(x, p, labelled, batch, np.random.default_rng(7), first)
    np.testing.assert_array_equal(fast, ref)


def test_torch_kernels_match_numpy(monkeypatch):
    x, p, labelled = gaussian_problem(800, 12, 6, seed=0, n_labelled=40)
    xd, pd, ld = dyadic_problem(800, 6, 5, seed=1, n_labelled=40)
    expected = select(x, p, labelled, 50, seed=1), select(xd, pd, ld, 50, seed=1)
    monkeypatch.setattr(kernels, "kernel_device", lambda device: "cpu")  # torch on the CPU
    np.testing.assert_array_equal(select(x, p, labelled, 50, seed=1), expected[0])
    np.testing.assert_array_equal(select(xd, pd, ld, 50, seed=1), expected[1])


def test_second_centre_is_drawn_proportionally_to_squared_distance():
    # Two classes, all rows predicted class 0 with p0 = 0.75: a = (-0.25, 0.25) for every row,
    # so ||g_i - g_j||^2 = 0.125 ||x_i - x_j||^2 and the first centre (longest x) is row 3.
    x = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 3.0], [0.0, 0.0]], dtype=np.float32)
    p = np.tile(np.array([0.75, 0.25], dtype=np.float32), (5, 1))
    labelled = np.array([False, False, False, False, True])
    seconds = np.array([select(x, p, labelled, 2, seed=s)[1] for s in range(4000)])
    assert (select(x, p, labelled, 2, seed=0)[0]) == 3
    d2 = ((x[:3] - x[3]) ** 2).sum(axis=1)
    frequencies = np.bincount(seconds, minlength=4)[:3] / seconds.size
    np.testing.assert_allclose(frequencies, d2 / d2.sum(), atol=0.03)


def test_all_confident_predictions_fall_back_to_uniform():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4)).astype(np.float32)
    p = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 100)]  # one-hot: every gradient is 0
    labelled = np.zeros(100, dtype=bool)
    labelled[:10] = True
    picks = [tuple(select(x, p, labelled, 5, seed=s)) for s in range(30)]
    assert len(set(picks)) == 30
    assert all(min(pick) >= 10 and len(set(pick)) == 5 for pick in picks)


def test_gradient_factors():
    p = np.array([[0.2, 0.5, 0.3], [0.5, 0.5, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(gradient_factors(p), [[0.2, -0.5, 0.3], [-0.5, 0.5, 0.0]])
