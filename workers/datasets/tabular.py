"""Table-shaped sources (Hugging Face datasets, files): their column fields and column handling."""

from __future__ import annotations

import pandas as pd
from pydantic import Field

from workers.datasets.base import DatasetError, DatasetSource


class TabularSource(DatasetSource):
    """Columns of a table-shaped source, and the held-out share when it has no test split."""

    text_column: str = Field("text", description="Column holding the text.")
    text_pair_column: str | None = Field(None, description="Optional second text column.")
    label_column: str = Field("label", description="Column holding the class label.")
    test_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of train held out for test when there is no test split."
    )

    def held_out_fraction(self) -> float:
        return self.test_fraction

    def columns(self, frame_columns, where: str, split: str) -> list[str]:
        """The source columns to read, in the order text, label[, pair]; errors name the field."""
        wanted = [("text_column", self.text_column), ("label_column", self.label_column)]
        if self.text_pair_column is not None:
            wanted.append(("text_pair_column", self.text_pair_column))
        have = list(frame_columns)
        for field, col in wanted:
            if col not in have:
                raise DatasetError(
                    f"{where}.source.{field}: column {col!r} not found in {split}; columns are: "
                    f"{', '.join(map(str, have))}"
                )
        return [col for _, col in wanted]

    def normalise(self, frame: pd.DataFrame) -> pd.DataFrame:
        """(text, label) frame from the source columns; text pairs join with a newline."""
        text = frame[self.text_column]
        if self.text_pair_column is not None:
            pair = frame[self.text_pair_column]
            missing = blank(text) | blank(pair)
            text = (text.astype(str) + "\n" + pair.astype(str)).mask(missing)
        return pd.DataFrame({"text": text.to_numpy(object),
                             "label": frame[self.label_column].to_numpy()})


def blank(texts: pd.Series) -> pd.Series:
    """True where a text is missing or only whitespace."""
    return texts.isna() | (texts.astype(str).str.strip() == "")
