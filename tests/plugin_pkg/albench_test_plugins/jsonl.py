"""A dataset source: a local JSON-lines file (config-relative paths, as every Path field)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from workers.datasets import DatasetError, TabularSource


class JsonlSource(TabularSource):
    """A local JSON-lines file: one object a line, with a text and a label field."""

    type: Literal["jsonl"] = "jsonl"
    train: Path = Field(description="The pool, one JSON object a line.")

    def frames(self, where, cache_dir):
        if not self.train.is_file():
            raise DatasetError(f"{where}.source.train: file not found: {self.train}")
        return self.normalise(pd.read_json(self.train, lines=True)), None
