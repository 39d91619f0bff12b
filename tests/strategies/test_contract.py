"""The contract in ``strategies.base``/``params``/``registry``: the context builder, read-only
contexts, the head's softmax, and parameter errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pytest
from annotated_types import Ge, Interval

from strategies import (
    INITIAL_POOLS,
    QUERY_STRATEGIES,
    LinearHead,
    MissingInputError,
    Need,
    QueryContext,
    StrategyParamError,
    UnknownNameError,
)
from strategies.base import QueryStrategy
from strategies.params import param_constraints


def _head(c=3, d=4, seed=0) -> LinearHead:
    rng = np.random.default_rng(seed)
    return LinearHead(rng.normal(size=(c, d)).astype(np.float32), rng.normal(size=c).astype(np.float32))


def test_softmax_is_bit_identical_to_the_hand_written_one_it_replaced():
    # The head used ``shifted = l - max; exp in place; /= sum``; scipy's softmax gives the same
    # bits (checked on float32 and float64, large logits included), so it replaced it. Pinned
    # here so that a scipy release that changes its arithmetic fails loudly: probabilities
    # feed every uncertainty-based selection.
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for scale in (1.0, 30.0, 1e4, 1e30):
            logits = (rng.normal(size=(513, 77)) * scale).astype(dtype)
            logits[:, 0] = -1e4  # an unseen class's bias
            shifted = logits - logits.max(axis=1, keepdims=True)
            np.exp(shifted, out=shifted)
            shifted /= shifted.sum(axis=1, keepdims=True)
            head = LinearHead(np.eye(77, dtype=dtype), np.zeros(77, dtype))
            got = head.predict_proba(logits)
            assert got.dtype == dtype and got.tobytes() == shifted.tobytes()


def test_context_arrays_are_read_only_views_the_callers_stay_writeable():
    labelled = np.zeros(10, bool)
    x = np.zeros((10, 2), np.float32)
    context = QueryContext(embeddings=x, labelled=labelled, n_classes=2)
    with pytest.raises(ValueError, match="read-only"):
        context.labelled[0] = True
    labelled[3] = True  # the caller's mask: writeable, and the view sees it
    assert x.flags.writeable and context.labelled[3]


def test_for_strategy_fills_exactly_the_needs():
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    labelled = np.array([True, False, True, False, False, True])
    head = _head()
    full = QueryContext.for_strategy(QUERY_STRATEGIES.create("dropquery"), x, labelled, 3, labels=y, head=head)
    assert full.head is head and full.labels is None and full.oracle_labels is None
    np.testing.assert_array_equal(full.probabilities, head.predict_proba(x))
    mixed = QueryContext.for_strategy(QUERY_STRATEGIES.create("alfamix"), x, labelled, 3, labels=y, head=head)
    np.testing.assert_array_equal(mixed.labels, [0, -1, 2, -1, -1, 2])
    assert mixed.probabilities is None
    oracle = QueryContext.for_strategy(INITIAL_POOLS.create("class_balanced"), x, labelled, 3, labels=y,
                                       device="cuda")
    np.testing.assert_array_equal(oracle.oracle_labels, y)
    assert oracle.head is None and oracle.labels is None and oracle.device == "cuda"
    plain = QueryContext.for_strategy(QUERY_STRATEGIES.create("random"), x, labelled, 3)
    assert plain.labels is plain.probabilities is plain.head is plain.oracle_labels is None


@pytest.mark.parametrize("name,kwargs,missing", [
    ("margin", {}, "Need.PROBABILITIES: pass `head`"), ("alfamix", {"head": _head()}, "Need.LABELS"),
])
def test_for_strategy_names_a_missing_input(name, kwargs, missing):
    with pytest.raises(MissingInputError, match=missing):
        QueryContext.for_strategy(QUERY_STRATEGIES.create(name), np.zeros((3, 4), np.float32),
                                  np.zeros(3, bool), 3, **kwargs)


@dataclass(frozen=True)
class _Example(QueryStrategy):
    k: Annotated[int, Ge(1)] = 2
    rate: Annotated[float, Interval(gt=0, lt=1)] | None = None
    mode: Literal["a", "b"] = "a"
    flag: bool = True

    def _select(self, context, n, rng):  # pragma: no cover - never selects
        raise NotImplementedError


def test_parameter_messages_name_the_parameter_the_allowed_values_and_the_value():
    with pytest.raises(StrategyParamError) as raised:
        _Example(k=0, rate=1.5, mode="c", flag="maybe")
    assert raised.value.problems == [
        ("k", "must be an int >= 1, got 0"),
        ("rate", "must be a number > 0 and < 1, or None, got 1.5"),
        ("mode", "must be one of 'a', 'b', got 'c'"),
        ("flag", "must be a bool, got 'maybe'"),
    ]
    assert str(raised.value).startswith("_Example: parameter k must be an int >= 1, got 0; _Example:")
    assert list(param_constraints(_Example)) == ["k", "rate", "mode", "flag"]


def test_values_are_normalised_as_a_config_would():
    example = _Example(k=3.0, rate="0.5")
    assert example.k == 3 and type(example.k) is int and example.rate == 0.5


def test_registry_errors():
    with pytest.raises(StrategyParamError, match=r"typiclust: parameter k must be an int >= 1, got 0"):
        QUERY_STRATEGIES.create("typiclust", {"k": 0})
    with pytest.raises(StrategyParamError, match=r"random: parameter k is unknown; valid parameters: none"):
        QUERY_STRATEGIES.create("random", {"k": 3})
    with pytest.raises(UnknownNameError, match="magrin"):
        QUERY_STRATEGIES.create("magrin")
    with pytest.raises(TypeError):
        QUERY_STRATEGIES.get("typiclust")(kk=1)  # the constructor itself: Python's own error
    assert Need.HEAD in QUERY_STRATEGIES.get("alfamix").needs
