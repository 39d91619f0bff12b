"""The ``huggingface`` source: a dataset loaded with ``datasets.load_dataset(path, config)``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from workers.datasets.base import DatasetError, DatasetSource, Frames
from workers.datasets.tabular import TabularSource
from workers.fs import expand

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95})?$")


class HuggingFaceSource(TabularSource):
    """A Hugging Face dataset loaded with ``datasets.load_dataset(path, config)``."""

    type: Literal["huggingface"] = "huggingface"
    path: str = Field(description="Hub id (e.g. 'SetFit/trec') or a local dataset script/folder.")
    config: str | None = Field(None, description="Dataset configuration name.")
    revision: str | None = Field(None, description="Hub revision (commit, tag or branch).")
    train_split: str = Field("train", description="Split used as the unlabelled pool.")
    test_split: str | None = Field(
        "test", description="Split used for evaluation; null: carve it from train (test_fraction)."
    )

    def resolve_paths(self, base: Path, field: str) -> DatasetSource:
        """A local ``path`` written ``./x`` or ``../x`` is relative to the config's folder."""
        path = expand(self.path, f"{field}.path")
        return self.model_copy(update={"path": str(base / path) if path.startswith(("./", "../")) else path})

    def offline_problems(self, field: str) -> list[str]:
        from workers.embedders.resolve import looks_like_path

        if looks_like_path(self.path) or _HUB_ID.match(self.path):
            return []
        return [f"{field}.path: {self.path!r} is not a hub id ('org/name') nor a local path"]

    def frames(self, where: str, cache_dir: Path) -> Frames:
        import datasets  # heavy; only needed for this source

        try:
            dd = datasets.load_dataset(self.path, self.config, revision=self.revision)
        except Exception as exc:
            cfg = f" (config {self.config!r})" if self.config else ""
            raise DatasetError(
                f"{where}.source.path: could not load Hugging Face dataset {self.path!r}{cfg}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        splits = list(dd.keys())
        frames = []
        for field, split in (("train_split", self.train_split), ("test_split", self.test_split)):
            if split is None:
                frames.append(None)
                continue
            if split not in dd:
                raise DatasetError(
                    f"{where}.source.{field}: split {split!r} not found; splits are: "
                    f"{', '.join(splits)}" + ("" if field == "train_split" else
                                              " (or set test_split: null to hold out test_fraction)")
                )
            ds = dd[split]
            cols = self.columns(ds.column_names, where, f"split {split!r}")
            frame = ds.select_columns(cols).to_pandas()
            feature = ds.features[self.label_column]
            if isinstance(feature, datasets.ClassLabel):  # ints -> names; -1 (no label) -> dropped
                codes = frame[self.label_column].to_numpy()
                names = np.asarray(feature.names, dtype=object)
                frame[self.label_column] = np.where(codes >= 0, names[np.clip(codes, 0, None)], None)
            frames.append(self.normalise(frame))
        return frames[0], frames[1]
