"""Tie-breaking (``strategies.ties``): ties go to the rng, and each helper draws exactly what
its docstring says (the selections of every strategy, and the rest of a trajectory, depend on
how much each call consumes)."""

from __future__ import annotations

import numpy as np

from strategies.ties import TIE_RTOL, argmax_random_ties, argmin_random_ties, top_k_random_ties


def _after(rng: np.random.Generator) -> int:
    return int(rng.integers(1 << 62))


def test_top_k_ties_broken_by_rng_not_index_order():
    scores = np.zeros(1000)
    picks = {tuple(top_k_random_ties(scores, 3, np.random.default_rng(s))) for s in range(20)}
    assert len(picks) > 15
    assert all(max(p) > 2 for p in picks)  # not simply the first indices


def test_top_k_orders_best_first():
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    np.testing.assert_array_equal(top_k_random_ties(scores, 3, np.random.default_rng(0)), [1, 3, 2])


def test_top_k_and_argmin_draw_one_permutation():
    values = np.random.default_rng(0).random(50)
    for call in (lambda r: top_k_random_ties(values, 5, r), lambda r: argmin_random_ties(values, r)):
        rng, reference = np.random.default_rng(7), np.random.default_rng(7)
        call(rng)
        reference.permutation(values.size)
        assert _after(rng) == _after(reference)


def test_argmin_counts_values_within_the_tolerance_as_ties():
    values = np.array([3.0, 1.0, 1.0 * (1 + TIE_RTOL / 2), 1.0 * (1 + 2 * TIE_RTOL), 2.0])
    wins = {argmin_random_ties(values, np.random.default_rng(s)) for s in range(40)}
    assert wins == {1, 2}


def test_argmax_draws_only_on_a_tie():
    rng, reference = np.random.default_rng(3), np.random.default_rng(3)
    assert argmax_random_ties(np.array([0.0, 5.0, 1.0]), rng) == 1
    assert _after(rng) == _after(reference)  # no tie: nothing drawn
    wins = {argmax_random_ties(np.array([5.0, 1.0, 5.0, 5.0]), np.random.default_rng(s)) for s in range(40)}
    assert wins == {0, 2, 3}
