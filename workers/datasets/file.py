"""The ``file`` source: a local Parquet or CSV file (or a train and a test file).

A file that cannot be read (not Parquet, not UTF-8 CSV, empty, unparsable, a folder) is a
``DatasetError`` naming the field, the path, the reader's reason and the fix; never a traceback.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from workers.datasets.base import DatasetError, Frames, one_line
from workers.datasets.tabular import TabularSource

PARQUET_FIX = "give a Parquet file written by pandas/pyarrow, or rename it .csv if it is CSV"
_SNIFF_BYTES = 8192  # how much of a .csv file is looked at to tell it is binary


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
        at = f"{where}.source.{field}"
        if path.is_dir():
            raise DatasetError(f"{at}: {path} is a directory; give a .parquet or .csv file")
        if not path.is_file():
            raise DatasetError(f"{at}: file not found: {path}")
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise DatasetError(
                f"{at}: unsupported file type {suffix or '(none)'!r} for {path}; "
                "use .parquet or .csv"
            )
        with _reading(at, path, {OSError: "cannot be read"}, "check that it is readable"):
            path.open("rb").close()
        read = self._read_parquet if suffix == ".parquet" else self._read_csv
        frame = read(path, where, at)
        if len(frame) == 0:
            raise DatasetError(f"{at}: {path} has column names but no rows; add rows")
        return self.normalise(frame)

    def _read_parquet(self, path: Path, where: str, at: str) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # a damaged file fails in read_schema (footer) or read_table (pages): ArrowInvalid, OSError
        what = "is not a readable Parquet file"
        with _reading(at, path, {pa.ArrowException: what, OSError: what}, PARQUET_FIX):
            cols = self.columns(pq.read_schema(path).names, where, str(path))
            return pq.read_table(path, columns=cols).to_pandas()

    def _read_csv(self, path: Path, where: str, at: str) -> pd.DataFrame:
        fix = self._csv_fix()
        empty = "is empty (0 bytes)" if path.stat().st_size == 0 else "has no header row"
        problems = {UnicodeDecodeError: "is not UTF-8 text", pd.errors.EmptyDataError: empty,
                    pd.errors.ParserError: "cannot be parsed as CSV"}
        _refuse_binary(path, at, fix)  # first: pandas reads a binary "header" whole (GBs of NULs)
        with _reading(at, path, problems, fix):
            try:
                cols = self.columns(pd.read_csv(path, nrows=0).columns, where, str(path))
                return pd.read_csv(path, usecols=cols)
            except (DatasetError, *problems):  # binary bytes can also pass for a wrong header
                _refuse_binary(path, at, fix)
                raise

    def _csv_fix(self) -> str:
        return (f"save it as UTF-8 CSV with a header row naming {self.text_column!r} and "
                f"{self.label_column!r}")


@contextlib.contextmanager
def _reading(at: str, path: Path, problems: dict, fix: str) -> Iterator[None]:
    """Turn the readers' errors into a ``DatasetError``; ``problems``: exception type -> what is
    wrong with the file (the first matching entry); the reader's reason follows it."""
    try:
        yield
    except tuple(problems) as exc:
        what = next(what for kind, what in problems.items() if isinstance(exc, kind))
        raise DatasetError(f"{at}: {path} {what}: {one_line(exc)}; {fix}") from exc


def _refuse_binary(path: Path, at: str, fix: str) -> None:
    """Raise when a .csv file does not start like UTF-8 text: Parquet, NUL bytes, bad UTF-8."""
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    if head.startswith(b"PAR1"):
        raise DatasetError(f"{at}: {path} is a Parquet file, not CSV; rename it .parquet")
    if b"\0" in head:
        raise DatasetError(
            f"{at}: {path} is not UTF-8 text: it holds NUL bytes (binary data, or UTF-16); {fix}")
    with _reading(at, path, {UnicodeDecodeError: "is not UTF-8 text"}, fix):
        codecs.getincrementaldecoder("utf-8")().decode(head)  # a cut-off last character passes
