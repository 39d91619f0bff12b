"""The plug-in dataset source ``jsonl``: read, cleaned like any source, its path config-relative."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from albench_test_plugins.jsonl import JsonlSource

from workers.datasets import DatasetError, load_dataset
from workers.datasets.spec import DatasetSpec


def write_jsonl(path: Path, n: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame({"text": [f"text number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(n)],
                         "label": ["cat" if i % 2 else "dog" for i in range(n)]})
    rows.to_json(path, orient="records", lines=True)
    return path


def test_a_relative_train_path_is_taken_from_the_config_folder(tmp_path):
    write_jsonl(tmp_path / "config" / "data" / "train.jsonl")
    source = JsonlSource(train=Path("data/train.jsonl"))
    resolved = source.resolve_paths(tmp_path / "config", "datasets[0].source")
    assert resolved.train == tmp_path / "config" / "data" / "train.jsonl"
    spec = DatasetSpec.model_construct(name="pets", source=resolved, subsample=None, split_seed=0,
                                       float_labels=False)
    data = load_dataset(spec)
    assert data.label_names == ["cat", "dog"]
    assert len(data.train_texts) + len(data.test_texts) == 40  # test_fraction held out


def test_a_missing_file_names_the_field(tmp_path):
    spec = DatasetSpec.model_construct(name="pets", source=JsonlSource(train=tmp_path / "none.jsonl"),
                                       subsample=None, split_seed=0, float_labels=False)
    with pytest.raises(DatasetError, match=r"datasets\[pets\]\.source\.train: file not found"):
        load_dataset(spec)
