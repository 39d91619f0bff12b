"""Conformance template every registered strategy's test class inherits.

A new strategy gets the whole suite by adding one class::

    class TestMyStrategy(StrategyConformance):
        strategy_name = "my_strategy"          # or override make_strategy()

The template builds synthetic pools (Gaussian mixtures with a fitted-like linear head), fills
exactly the inputs the strategy declares in ``needs``, and checks the contract of
``QueryStrategy.select``: batch, reproducibility, no write into the context, no global random
state, and a clear error for every invalid value of every parameter (generated from the
parameter's declared constraints, as scikit-learn's ``generate_invalid_param_val``).
"""

from __future__ import annotations

import dataclasses
import random
from typing import ClassVar

import annotated_types
import numpy as np
import pytest

from strategies import INITIAL_POOLS, QUERY_STRATEGIES, LinearHead, QueryContext, StrategyParamError
from strategies.base import PoolExhaustedError, QueryStrategy
from strategies.params import ParamConstraint, param_constraints


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


_BOUND_VIOLATIONS = {
    annotated_types.Gt: lambda b: b.gt,
    annotated_types.Ge: lambda b: b.ge - 1,
    annotated_types.Lt: lambda b: b.lt,
    annotated_types.Le: lambda b: b.le + 1,
}


def invalid_values(constraint: ParamConstraint) -> list:
    """Values ``constraint`` rejects: one per declared bound, a value outside the choices, a
    value of the wrong type, and None unless it is allowed. Empty when the parameter declares
    nothing but a bare ``int``/``float``/``str`` (or no type at all)."""
    values: list = []
    if constraint.choices is not None:
        values.append("not-one-of-the-choices")
    for bound in constraint.bounds:
        if type(bound) in _BOUND_VIOLATIONS:
            values.append(_BOUND_VIOLATIONS[type(bound)](bound))
        elif isinstance(bound, annotated_types.MinLen) and bound.min_length > 0:
            values.append("x" * (bound.min_length - 1) if constraint.kind is str else [0] * (bound.min_length - 1))
        elif isinstance(bound, annotated_types.MaxLen):
            values.append("x" * (bound.max_length + 1) if constraint.kind is str else [0] * (bound.max_length + 1))
    if not values and constraint.kind is not bool:
        return []  # only a bare type: no constraint worth the name
    values.append("maybe" if constraint.kind is bool else object() if constraint.kind is str else "not-a-number")
    if not constraint.nullable:
        values.append(None)
    return values


class StrategyConformance:
    """Inherit and set ``strategy_name`` (and ``registry`` for initial-pool-only selectors)."""

    strategy_name: str = ""
    registry = QUERY_STRATEGIES
    params: ClassVar[dict] = {}
    free_params: ClassVar[dict[str, str]] = {}
    """Parameters with no constraint to violate, each with the reason it may take any value."""

    def make_strategy(self) -> QueryStrategy:
        return self.registry.get(self.strategy_name)(**self.params)

    def _context(self, strategy, n_classes=4, n_labelled=30, seed=0, **pool_kwargs):
        x, labels, labelled = make_pool(n_classes=n_classes, n_labelled=n_labelled, seed=seed, **pool_kwargs)
        return make_context(strategy, x, labels, labelled, n_classes)

    def _select(self, n_classes=4, n_labelled=30, n=10, seed=0, rng_seed=1, **pool_kwargs):
        strategy = self.make_strategy()
        context = self._context(strategy, n_classes, n_labelled, seed, **pool_kwargs)
        chosen = strategy.select(context, n, np.random.default_rng(rng_seed))
        return chosen, context.labelled

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


    @staticmethod
    def _context_arrays(context: QueryContext) -> dict[str, np.ndarray]:
        arrays = {f.name: getattr(context, f.name) for f in dataclasses.fields(context)}
        if context.head is not None:
            arrays.update(head_weights=context.head.weights, head_bias=context.head.bias)
        return {name: value for name, value in arrays.items() if isinstance(value, np.ndarray)}

    @pytest.mark.parametrize("n_labelled", [0, 30])
    def test_never_writes_into_its_context(self, n_labelled):
        strategy = self.make_strategy()
        if n_labelled == 0 and not strategy.cold_start:
            return
        context = self._context(strategy, n_labelled=n_labelled)
        before = {name: (a.dtype, a.shape, a.tobytes()) for name, a in self._context_arrays(context).items()}
        strategy.select(context, 12, np.random.default_rng(0))
        after = {name: (a.dtype, a.shape, a.tobytes()) for name, a in self._context_arrays(context).items()}
        assert after == before, f"changed: {[k for k in before if before[k] != after[k]]}"

    def test_never_uses_global_random_state(self):
        strategy = self.make_strategy()
        context = self._context(strategy)
        np.random.seed(123)
        random.seed(123)
        numpy_state, python_state = np.random.get_state(), random.getstate()
        strategy.select(context, 12, np.random.default_rng(0))
        after = np.random.get_state()
        assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1])
        assert after[2:] == numpy_state[2:], "the strategy used numpy's global random state"
        assert random.getstate() == python_state, "the strategy used the `random` module"

    def test_every_parameter_has_a_constraint(self):
        cls = self.registry.get(self.strategy_name)
        constraints = param_constraints(cls)
        unknown = sorted(set(self.free_params) - set(constraints))
        assert not unknown, f"free_params names no parameter of {self.strategy_name}: {unknown}"
        bare = [name for name, c in constraints.items() if not invalid_values(c) and name not in self.free_params]
        assert not bare, (
            f"{self.strategy_name}: no constraint to generate an invalid value from for {bare}; "
            "declare one (Annotated[int, Ge(1)], Literal[...]) or list it in free_params with a reason"
        )

    def test_rejects_every_invalid_parameter_value_naming_it(self):
        cls = self.registry.get(self.strategy_name)
        for name, constraint in param_constraints(cls).items():
            for value in invalid_values(constraint):
                with pytest.raises(StrategyParamError) as raised:
                    cls(**{**self.params, name: value})
                assert [p for p, _ in raised.value.problems] == [name]
                message = str(raised.value)
                assert f"{self.strategy_name}: parameter {name} must be" in message
                assert constraint.describe() in message and f"got {value!r}" in message
                with pytest.raises(StrategyParamError) as raised:
                    self.registry.create(self.strategy_name, {**self.params, name: value})
                assert [p for p, _ in raised.value.problems] == [name]

    def test_create_validates_and_reports_every_problem_at_once(self):
        cls = self.registry.get(self.strategy_name)
        assert self.registry.create(self.strategy_name, self.params) == self.make_strategy()
        assert self.registry.create(self.strategy_name) == cls()  # the defaults are valid
        bad = {name: invalid_values(c)[0] for name, c in param_constraints(cls).items() if invalid_values(c)}
        with pytest.raises(StrategyParamError) as raised:
            self.registry.create(self.strategy_name, {**bad, "not_a_parameter": 1})
        assert [p for p, _ in raised.value.problems] == [*bad, "not_a_parameter"]
        assert "not_a_parameter is unknown" in str(raised.value)


def all_registered() -> list[tuple[str, object]]:
    """(name, registry) for every registered strategy: used to check none lacks a test class."""
    return [(name, QUERY_STRATEGIES) for name in QUERY_STRATEGIES.names()] + [
        (name, INITIAL_POOLS) for name in INITIAL_POOLS.names()
    ]
