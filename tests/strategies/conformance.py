"""Conformance template every registered strategy's test class inherits.

A new strategy gets the whole suite by adding one class::

    class TestMyStrategy(StrategyConformance):
        strategy_name = "my_strategy"          # or override make_strategy()

The template builds synthetic pools (Gaussian mixtures with a fitted-like linear head), fills
exactly the inputs the strategy declares in ``needs``, and checks the contract of
``QueryStrategy.select``.
"""

from __future__ import annotations

import numpy as np
import pytest

from strategies import INITIAL_POOLS, QUERY_STRATEGIES, LinearHead, Need, QueryContext
from strategies.base import PoolExhaustedError, QueryStrategy


def make_pool(
    n: int = 300, d: int = 16, n_classes: int = 4, n_labelled: int = 30, seed: int = 0,
    labelled_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings (n, d) from a Gaussian mixture, true labels, and a labelled mask.

    ``labelled_classes`` restricts the labelled rows to the first classes (others unseen).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_classes, d))
    labels = rng.integers(0, n_classes, size=n)
    x = (centres[labels] + rng.normal(size=(n, d))).astype(np.float32)
    labelled = np.zeros(n, dtype=bool)
    eligible = np.flatnonzero(labels < (labelled_classes or n_classes))
    labelled[rng.choice(eligible, size=min(n_labelled, eligible.size), replace=False)] = True
    return x, labels.astype(np.int64), labelled


def fitted_head(x: np.ndarray, labels: np.ndarray, labelled: np.ndarray, n_classes: int) -> LinearHead:
    """A class-mean linear head (cheap stand-in for logistic regression; unseen classes -> -1e4)."""
    d = x.shape[1]
    weights = np.zeros((n_classes, d), dtype=np.float32)
    bias = np.full(n_classes, -1e4, dtype=np.float32)
    for c in range(n_classes):
        rows = labelled & (labels == c)
        if rows.any():
            mean = x[rows].mean(axis=0)
            weights[c] = mean
            bias[c] = -0.5 * float(mean @ mean)
    return LinearHead(weights=weights, bias=bias)


def make_context(
    strategy: QueryStrategy, x: np.ndarray, labels: np.ndarray, labelled: np.ndarray,
    n_classes: int,
) -> QueryContext:
    """A context holding exactly what ``strategy.needs`` asks for (``QueryContext.for_strategy``),
    from a class-mean head (all zeros when nothing is labelled)."""
    if labelled.any():
        head = fitted_head(x, labels, labelled, n_classes)
    else:
        head = LinearHead(np.zeros((n_classes, x.shape[1]), np.float32), np.zeros(n_classes, np.float32))
    return QueryContext.for_strategy(strategy, x, labelled, n_classes, labels=labels, head=head)


class StrategyConformance:
    """Inherit and set ``strategy_name`` (and ``registry`` for initial-pool-only selectors)."""

    strategy_name: str = ""
    registry = QUERY_STRATEGIES
    params: dict = {}

    def make_strategy(self) -> QueryStrategy:
        return self.registry.get(self.strategy_name)(**self.params)

    def _select(self, n_classes=4, n_labelled=30, n=10, seed=0, rng_seed=1, **pool_kwargs):
        strategy = self.make_strategy()
        x, labels, labelled = make_pool(n_classes=n_classes, n_labelled=n_labelled, seed=seed, **pool_kwargs)
        context = make_context(strategy, x, labels, labelled, n_classes)
        chosen = strategy.select(context, n, np.random.default_rng(rng_seed))
        return chosen, labelled

    def _check(self, chosen: np.ndarray, labelled: np.ndarray, n: int) -> None:
        assert chosen.dtype == np.int64
        assert chosen.shape == (n,)
        assert np.unique(chosen).size == n, "duplicate indices"
        assert chosen.min() >= 0 and chosen.max() < labelled.size
        assert not labelled[chosen].any(), "selected an already labelled row"

    @pytest.mark.parametrize("n", [1, 7, 25])
    def test_exact_batch_unique_unlabelled(self, n):
        chosen, labelled = self._select(n=n)
        self._check(chosen, labelled, n)

    def test_same_rng_same_result(self):
        first, _ = self._select(n=12, rng_seed=5)
        second, _ = self._select(n=12, rng_seed=5)
        np.testing.assert_array_equal(first, second)

    @pytest.mark.parametrize("n_classes", [2, 77])
    def test_class_counts(self, n_classes):
        chosen, labelled = self._select(n_classes=n_classes, n_labelled=40, n=15)
        self._check(chosen, labelled, 15)

    def test_classes_without_labelled_rows(self):
        chosen, labelled = self._select(n_classes=6, n_labelled=20, n=10, labelled_classes=2)
        self._check(chosen, labelled, 10)

    def test_n_equal_to_all_unlabelled(self):
        chosen, labelled = self._select(n=270, n_labelled=30)
        self._check(chosen, labelled, 270)

    def test_n_larger_than_unlabelled_is_clear_error(self):
        with pytest.raises(PoolExhaustedError, match="unlabelled"):
            self._select(n=271, n_labelled=30)

    def test_empty_labelled_set(self):
        strategy = self.make_strategy()
        if not strategy.cold_start:
            with pytest.raises(ValueError, match="labelled"):
                self._select(n_labelled=0, n=5)
            return
        chosen, labelled = self._select(n_labelled=0, n=12)
        self._check(chosen, labelled, 12)


def all_registered() -> list[tuple[str, object]]:
    """(name, registry) for every registered strategy: used to check none lacks a test class."""
    return [(name, QUERY_STRATEGIES) for name in QUERY_STRATEGIES.names()] + [
        (name, INITIAL_POOLS) for name in INITIAL_POOLS.names()
    ]
