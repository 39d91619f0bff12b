"""Random sampling: the baseline query strategy and the default initial pool."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.base import QueryContext, QueryStrategy
from strategies.registry import register_query_strategy


@register_query_strategy("random", initial_pool=True)
@dataclass(frozen=True)
class RandomSampling(QueryStrategy):
    """Uniformly random unlabelled rows, without replacement. No parameters."""

    cold_start = True

    def _select(self, context: QueryContext, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(context.unlabelled_indices(), size=n, replace=False)
