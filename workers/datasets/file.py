"""The ``file`` source: a local Parquet or CSV file (or a train and a test file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from workers.datasets.base import DatasetError, Frames
from workers.datasets.tabular import TabularSource


class FileSource(TabularSource):
    """A local Parquet or CSV file (or a train and a test file)."""

    type: Literal["file"] = "file"
    train: Path = Field(description="Parquet (.parquet) or CSV (.csv) file with the pool.")
    test: Path | None = Field(
        None, description="Optional test file; without it test_fraction of train is held out."
    )

    def frames(self, where: str, cache_dir: Path) -> Frames:
        train = self._read_table(Path(self.train).expanduser(), where, "train")
        test = None
        if self.test is not None:
            test = self._read_table(Path(self.test).expanduser(), where, "test")
        return train, test

    def _read_table(self, path: Path, where: str, field: str) -> pd.DataFrame:
        if not path.is_file():
            raise DatasetError(f"{where}.source.{field}: file not found: {path}")
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            cols = self.columns(pq.read_schema(path).names, where, str(path))
            frame = pq.read_table(path, columns=cols).to_pandas()
        elif suffix == ".csv":
            cols = self.columns(pd.read_csv(path, nrows=0).columns, where, str(path))
            frame = pd.read_csv(path, usecols=cols)
        else:
            raise DatasetError(
                f"{where}.source.{field}: unsupported file type {suffix or '(none)'!r} for {path}; "
                "use .parquet or .csv"
            )
        return self.normalise(frame)
