"""Conformance and exact checks for random and uncertainty sampling."""

from __future__ import annotations

import numpy as np

from strategies import INITIAL_POOLS, QUERY_STRATEGIES, QueryContext
from strategies.uncertainty import EntropySampling, LeastConfidenceSampling, MarginSampling
from tests.strategies.conformance import StrategyConformance


class TestRandom(StrategyConformance):
    strategy_name = "random"


class TestRandomInitialPool(StrategyConformance):
    strategy_name = "random"
    registry = INITIAL_POOLS


class TestMargin(StrategyConformance):
    strategy_name = "margin"


class TestEntropy(StrategyConformance):
    strategy_name = "entropy"


class TestLeastConfidence(StrategyConformance):
    strategy_name = "least_confidence"


def _context(probabilities: np.ndarray, labelled: np.ndarray) -> QueryContext:
    n, c = probabilities.shape
    return QueryContext(
        embeddings=np.zeros((n, 2), np.float32), labelled=labelled, n_classes=c,
        probabilities=probabilities.astype(np.float32),
    )


def test_uncertainty_picks_match_brute_force():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(5), size=200)
    labelled = np.zeros(200, bool)
    labelled[rng.choice(200, 20, replace=False)] = True
    sorted_p = np.sort(p, axis=1)
    expected_scores = {
        MarginSampling: -(sorted_p[:, -1] - sorted_p[:, -2]),
        EntropySampling: -(p * np.log(p)).sum(axis=1),
        LeastConfidenceSampling: -p.max(axis=1),
    }
    for cls, scores in expected_scores.items():
        chosen = cls().select(_context(p, labelled), 15, np.random.default_rng(0))
        scores = np.where(labelled, -np.inf, scores)
        np.testing.assert_array_equal(np.sort(chosen), np.sort(np.argsort(-scores)[:15]))


def test_registries_list_the_builtins():
    assert {"random", "margin", "entropy", "least_confidence"} <= set(QUERY_STRATEGIES.names())
    assert "random" in INITIAL_POOLS
