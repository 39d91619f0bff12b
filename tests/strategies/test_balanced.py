"""Conformance and exact checks for the class-balanced initial pool (an oracle ablation)."""

from __future__ import annotations

import numpy as np

from strategies import INITIAL_POOLS, QueryContext
from strategies.balanced import ClassBalancedRandom
from tests.strategies.conformance import StrategyConformance


class TestClassBalancedInitialPool(StrategyConformance):
    strategy_name = "class_balanced"
    registry = INITIAL_POOLS


def reference_class_balanced(truth, labelled, n_classes, n, rng):
    """Round-robin written with loops; consumes the rng as the fast version does."""
    class_rank = rng.permutation(n_classes)
    rows = rng.permutation(np.flatnonzero(~labelled))
    queues = {c: [int(r) for r in rows if truth[r] == c] for c in range(n_classes)}
    already = {c: int(np.sum(truth[labelled] == c)) for c in range(n_classes)}
    visit = sorted(range(n_classes), key=lambda c: class_rank[c])
    picked = []
    level = 0
    while len(picked) < n:
        for c in visit:
            position = level - already[c]  # this class's row for round `level`
            if 0 <= position < len(queues[c]) and len(picked) < n:
                picked.append(queues[c][position])
        level += 1
    return np.array(picked)


def test_matches_round_robin_reference():
    for seed, (n_classes, n, n_labelled) in enumerate([(3, 40, 0), (7, 100, 25), (20, 333, 60)]):
        data = np.random.default_rng(seed)
        truth = data.choice(n_classes, size=600, p=data.dirichlet(np.ones(n_classes)))
        labelled = np.zeros(600, bool)
        labelled[data.choice(600, n_labelled, replace=False)] = True
        context = QueryContext(
            embeddings=np.zeros((600, 2), np.float32), labelled=labelled, n_classes=n_classes,
            oracle_labels=truth,
        )
        fast = ClassBalancedRandom().select(context, n, np.random.default_rng(seed + 10))
        slow = reference_class_balanced(truth, labelled, n_classes, n, np.random.default_rng(seed + 10))
        np.testing.assert_array_equal(fast, slow)


def test_is_balanced_when_classes_allow():
    truth = np.repeat(np.arange(5), 40)
    context = QueryContext(
        embeddings=np.zeros((200, 2), np.float32), labelled=np.zeros(200, bool), n_classes=5,
        oracle_labels=truth,
    )
    chosen = ClassBalancedRandom().select(context, 23, np.random.default_rng(0))
    counts = np.bincount(truth[chosen], minlength=5)
    assert counts.max() - counts.min() <= 1
