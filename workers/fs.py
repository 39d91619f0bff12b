"""Where the store and the checkpoints live: a local folder or an object store, one interface.

``location(x)`` is a ``pathlib.Path`` for a local path and an ``ObjectPath`` for a URI
(``s3://bucket/prefix``, ``gs://bucket/prefix``, anything ``pyarrow.fs.FileSystem.from_uri``
resolves, else fsspec's filesystems when fsspec and the scheme's package are installed).
``ObjectPath`` has the part of ``Path``'s interface the store and the checkpoints use (``/``,
``name``, ``stem``, ``parent``, ``exists``, ``is_file``, ``is_dir``, ``read_bytes``,
``read_text``, ``unlink``, ``iterdir``, ``glob``, ``rglob``; ``mkdir`` does nothing: object
stores have no folders), so both go through one code path. Writes go through ``write_whole``:
a local file is replaced atomically (``workers.files.atomic_write``), an object is one upload
that becomes visible whole, when it completes, or not at all (an object store has no rename).

Endpoint, region and credentials come from the environment, the way pyarrow reads them, never
from the config: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (``AWS_SESSION_TOKEN``), the
endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (pyarrow's ``from_uri`` reads them;
its ``S3FileSystem()`` constructor does not, so filesystems are always made by ``from_uri``),
and the region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (passed explicitly, so no request
is spent asking the bucket for it). ``STORE_ENV`` names them.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from workers.files import atomic_write

STORE_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
             "AWS_EC2_METADATA_DISABLED", "GOOGLE_APPLICATION_CREDENTIALS")
"""The environment variables object-store clients read (what workers that touch the store need)."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


class PathError(ValueError):
    """A path of the config that cannot be resolved; the message names the field and the fix."""


_VARIABLE = re.compile(r"\$(\$|\w+|\{([^}]*)\})")


def expand(value: Path | str | None, field: str) -> Path | str | None:
    """``value`` with ``$VAR`` and ``${VAR}`` replaced by the environment's values (the type
    kept; ``$$`` is a literal ``$``); an unset (or malformed) variable is a ``PathError`` naming
    ``field``."""
    if value is None or "$" not in str(value):
        return value

    def one(match: re.Match) -> str:
        if match.group(1) == "$":
            return "$"  # $$: a literal dollar sign
        name = match.group(2) if match.group(2) is not None else match.group(1)
        if not re.fullmatch(r"[A-Za-z_]\w*", name) or name not in os.environ:
            raise PathError(
                f"{field}: {str(value)!r} uses the environment variable {match.group(0)}, which is "
                + ("not a variable name" if not re.fullmatch(r"[A-Za-z_]\w*", name) else "not set")
                + f"; fix: set it (export {name or 'NAME'}=...) or write the path out in {field}")
        return os.environ[name]
    expanded = _VARIABLE.sub(one, str(value))
    return Path(expanded) if isinstance(value, Path) else expanded


def absolute_path(path: Path | str | None, base: Path, field: str) -> Path | str | None:
    """``path`` expanded (``$VAR``, ``~``) and, when relative, taken from ``base``; an
    object-store URI and None stay as they are."""
    path = expand(path, field)
    if path is None or is_remote(path):
        return path
    path = Path(path).expanduser()
    return path if path.is_absolute() else Path(base) / path


def is_remote(where: str | os.PathLike) -> bool:
    """True for a URI of an object store (any ``scheme://`` but ``file://``)."""
    match = _SCHEME.match(str(where)) if isinstance(where, str) else None
    return match is not None and match.group(1).lower() != "file"


def location(where: str | os.PathLike | ObjectPath) -> Path | ObjectPath:
    """``where`` as a ``Path`` (local; ``file://`` URIs too) or an ``ObjectPath`` (a URI)."""
    if isinstance(where, (Path, ObjectPath)):
        return where
    text = os.fspath(where)
    if is_remote(text):
        return ObjectPath(text)
    if text.startswith("file://"):
        return Path(urlsplit(text).path)
    return Path(text)


def store_env() -> dict[str, str]:
    """The ``STORE_ENV`` variables set in this process (what a worker needs to reach the store)."""
    return {name: os.environ[name] for name in STORE_ENV if name in os.environ}


def write_whole(target: Path | ObjectPath, data: bytes) -> None:
    """Make ``target`` hold ``data``: a reader sees the old content or the new, never a part."""
    if isinstance(target, ObjectPath):
        target.write_whole(data)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as temporary:
        temporary.write_bytes(data)


def _with_region(uri: str) -> str:
    """An ``s3://`` URI with ``?region=`` from the environment when it names none."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query))
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if parts.scheme.lower() != "s3" or "region" in query or not region:
        return uri
    return urlunsplit(parts._replace(query=urlencode({**query, "region": region})))


@functools.lru_cache(maxsize=32)
def _filesystem(uri: str, env: tuple):  # env: part of the cache key (tests change endpoints)
    """``(filesystem, path)`` for ``uri``: pyarrow's own filesystems, else fsspec's."""
    from pyarrow import ArrowInvalid
    from pyarrow import fs as pafs

    try:
        return pafs.FileSystem.from_uri(_with_region(uri))
    except ArrowInvalid as exc:  # a scheme pyarrow does not know: fsspec, when it is there
        try:
            from fsspec.core import url_to_fs
        except ImportError:
            raise ValueError(f"{uri}: {exc} (pyarrow knows s3://, gs://, hdfs://; fsspec is not "
                             "installed for others)") from None
        try:
            filesystem, path = url_to_fs(uri)
        except (ImportError, ValueError) as fsspec_exc:
            raise ValueError(f"{uri}: neither pyarrow ({exc}) nor fsspec ({fsspec_exc}) opens it") from None
        return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), path.rstrip("/")


class ObjectPath:
    """A file or folder on an object store, used like a ``pathlib.Path`` (see the module)."""

    __slots__ = ("_fs", "_path", "uri")

    def __init__(self, uri: str, _fs=None, _path: str | None = None) -> None:
        self.uri = uri.rstrip("/")
        if _fs is None:
            _fs, _path = _filesystem(self.uri, tuple(sorted(store_env().items())))
        self._fs, self._path = _fs, _path.rstrip("/")

    @property
    def filesystem(self):
        """The pyarrow filesystem, and ``path`` the name inside it (``bucket/key``)."""
        return self._fs

    @property
    def path(self) -> str:
        return self._path

    # ------------------------------------------------------------------------------ naming
    def __truediv__(self, name: str) -> ObjectPath:
        name = str(name).strip("/")
        return ObjectPath(f"{self.uri}/{name}", self._fs, f"{self._path}/{name}")

    @property
    def name(self) -> str:
        return self._path.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        name = self.name
        return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name

    @property
    def parent(self) -> ObjectPath:
        if "/" not in self._path:
            return self
        return ObjectPath(self.uri.rsplit("/", 1)[0], self._fs, self._path.rsplit("/", 1)[0])

    def resolve(self) -> ObjectPath:
        return self

    absolute = resolve

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"ObjectPath({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __reduce__(self):  # a worker reopens it from its URI (its own environment, its own client)
        return (ObjectPath, (self.uri,))

    # ------------------------------------------------------------------------------- state
    def _type(self):
        return self._fs.get_file_info(self._path).type

    def exists(self) -> bool:
        from pyarrow.fs import FileType

        return self._type() != FileType.NotFound

    def is_file(self) -> bool:
        from pyarrow.fs import FileType

        return self._type() == FileType.File

    def is_dir(self) -> bool:
        from pyarrow.fs import FileType

        return self._type() == FileType.Directory

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: an object store has no folders (a key's prefix is its folder)."""

    # --------------------------------------------------------------------------- contents
    def read_bytes(self) -> bytes:
        """The object's bytes (``FileNotFoundError`` when there is none)."""
        with self._fs.open_input_stream(self._path) as stream:
            return stream.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_whole(self, data: bytes) -> None:
        """One upload: the object appears when it completes (a killed writer leaves none)."""
        with self._fs.open_output_stream(self._path) as stream:
            stream.write(data)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self._fs.delete_file(self._path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    # --------------------------------------------------------------------------- listing
    def _children(self, recursive: bool) -> list[ObjectPath]:
        from pyarrow.fs import FileSelector

        infos = self._fs.get_file_info(FileSelector(self._path, allow_not_found=True,
                                                    recursive=recursive))
        found = []
        for info in infos:
            relative = info.path[len(self._path):].strip("/")
            found.append(ObjectPath(f"{self.uri}/{relative}", self._fs, info.path))
        return sorted(found, key=lambda p: p.uri)

    def iterdir(self):
        return iter(self._children(recursive=False))

    def glob(self, pattern: str):
        return iter([p for p in self._children(recursive=False) if fnmatch.fnmatchcase(p.name, pattern)])

    def rglob(self, pattern: str):
        return iter([p for p in self._children(recursive=True) if fnmatch.fnmatchcase(p.name, pattern)])
