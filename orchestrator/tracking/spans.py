"""A parent run spans its trials: its end follows the latest end among them."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from orchestrator.tracking.base import RunWrite


def later_ends(writes: Iterable[RunWrite], parent_of: Callable, known: dict[str, int]) -> dict[str, int]:
    """Parent run id -> its new end: the latest end of its trials among ``writes`` where that is
    later than the end it has in ``known`` (updated in place)."""
    found: dict[str, int] = {}
    for write in writes:
        if write.end is not None:
            parent = parent_of(write.trial)
            if write.timestamp > max(found.get(parent, 0), known.get(parent, 0)):
                found[parent] = write.timestamp
    known.update(found)
    return found
