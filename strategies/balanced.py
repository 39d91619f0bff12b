"""Class-balanced random initial pool: an ablation that reads the TRUE labels of the pool.

It answers "how much would a perfectly balanced start help?", which no real cold start can
know; results obtained with it are not comparable to real initial pools.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.base import Need, QueryContext, QueryStrategy
from strategies.registry import register_initial_pool


@register_initial_pool("class_balanced")
@dataclass(frozen=True)
class ClassBalancedRandom(QueryStrategy):
    """Random rows, round-robin over the true classes (uses the oracle labels). No parameters.

    Classes are visited in an order drawn from the rng, and each class's unlabelled rows in an
    order drawn from the rng; round r takes the r-th row of every class that still has one. Rows
    already labelled count towards their class, so the labelled set as a whole stays as
    balanced as the pool allows (a class with fewer rows runs out and is skipped).
    """

    needs = frozenset({Need.ORACLE_LABELS})
    cold_start = True

    def _select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        truth = context.oracle_labels
        n_classes = max(context.n_classes, int(truth.max()) + 1)
        class_rank = rng.permutation(n_classes)  # position of each class within a round
        rows = rng.permutation(context.unlabelled_indices())
        classes = truth[rows]
        by_class = np.argsort(classes, kind="stable")  # random order kept within a class
        counts = np.bincount(classes, minlength=n_classes)
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        within = np.empty(rows.size, dtype=np.int64)
        within[by_class] = np.arange(rows.size) - starts[classes[by_class]]
        already = np.bincount(truth[context.labelled], minlength=n_classes)
        round_of = within + already[classes]
        order = np.lexsort((class_rank[classes], round_of))
        return rows[order[:n]]
