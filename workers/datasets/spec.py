"""``DatasetSpec``: one task, its source a discriminated union of every registered source spec."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from workers.datasets.base import discover_sources
from workers.specs import Name, Spec

_SOURCES = dict(discover_sources().items())  # built-ins and plug-ins (entry points)

SourceSpec = Annotated[Union[tuple(_SOURCES.values())], Field(discriminator="type")]  # noqa: UP007
"""Any registered source spec, told apart by its ``type`` field."""


def _listed(names: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return " or ".join(filter(None, [", ".join(names[:-1]), names[-1]]))


class Subsample(Spec):
    """Draw a fixed random subset of each split (part of the dataset's fingerprint)."""

    train: int | None = Field(None, ge=2, description="Rows kept in the pool (None: all).")
    test: int | None = Field(None, ge=1, description="Rows kept for evaluation (None: all).")
    seed: int = Field(0, ge=0, description="Seed of the subsample draw.")


class DatasetSpec(Spec):
    """One text classification task: where it comes from and how much of it to use."""

    name: Name = Field(description="Name used in reports, MLflow and the store path.")
    source: SourceSpec = Field(description=f"Where the data comes from: type {_listed(list(_SOURCES))}.")
    subsample: Subsample | None = Field(None, description="Optional fixed subsample per split.")
    split_seed: int = Field(
        0, ge=0, description="Seed of the held-out test split when the source has no test split."
    )
    float_labels: bool = Field(
        False, description="Accept a label column of non-integer numbers with many distinct values "
        "(it looks like a continuous score) and make each distinct value a class; without it such "
        "a column is refused."
    )
