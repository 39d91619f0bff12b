"""A query strategy: the unlabelled rows of lowest index (a deterministic baseline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge

from strategies.base import QueryStrategy


@dataclass(frozen=True)
class LowestIndex(QueryStrategy):
    """The unlabelled rows of lowest index, after skipping ``offset`` of them."""

    offset: Annotated[int, Ge(0)] = 0

    def _select(self, context, n, rng):
        rows = context.unlabelled_indices()
        return rows[self.offset : self.offset + n] if rows.size >= self.offset + n else rows[:n]
