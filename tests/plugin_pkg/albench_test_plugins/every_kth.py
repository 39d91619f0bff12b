"""An initial pool: every k-th row of the pool from a random start (a cold start)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from annotated_types import Ge

from strategies.base import QueryStrategy


@dataclass(frozen=True)
class EveryKth(QueryStrategy):
    """Every ``k``-th unlabelled row from a random start: a systematic sample."""

    k: Annotated[int, Ge(1)] = 7
    cold_start = True

    def _select(self, context, n, rng):
        rows = context.unlabelled_indices()
        order = np.roll(rows, -int(rng.integers(rows.size)))
        picked = np.concatenate([order[i :: self.k] for i in range(self.k)])
        return picked[:n]
