"""Checks of an MLflow tracking URI that answer in a second, before MLflow is asked anything.

MLflow itself retries a database it cannot create for minutes, creates missing folders, and
fails on an unknown scheme with a model-registry message; these checks say what is wrong with
``tracking.uri`` and how to fix it instead. SQLite files are also created and migrated under a
file lock, so two commands started together on a fresh store do not both run MLflow's schema
creation.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse, urlunparse

from orchestrator.tracking.base import TrackingURIError, masked

SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")
"""What MLflow 3 can track to (``file:`` needs MLFLOW_ALLOW_FILE_STORE and is not offered)."""
SERVER_TIMEOUT_SECONDS = 15.0
"""A refused connection fails at once; this only bounds a server that takes it and says nothing."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory), else None."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return None if database in (None, "", ":memory:") else Path(database)


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """An ``http(s)://user:password@host`` URI as (the URI without them, user, password); MLflow
    takes a server's credentials from MLFLOW_TRACKING_USERNAME/PASSWORD, not from the URI. Any
    other URI comes back as it is, with (None, None)."""
    url = urlparse(uri)
    if url.scheme not in ("http", "https") or "@" not in url.netloc:
        return uri, None, None
    host = url.netloc.rpartition("@")[2]
    return (urlunparse(url._replace(netloc=host)), unquote(url.username or "") or None,
            unquote(url.password or "") or None)


def use_server_credentials(uri: str) -> str:
    """The URI MLflow is given for ``uri``: a server's credentials moved from the URI to MLflow's
    basic-auth variables (where its client and the REST writer read them), the URI without them."""
    clean, user, password = split_credentials(uri)
    if user is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
    if password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    return clean


def check_uri(uri: str) -> None:
    """Raise ``TrackingURIError`` when ``uri`` cannot work (scheme, SQLite folder, server)."""
    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme not in SCHEMES:
        raise TrackingURIError(
            f"tracking.uri: {masked(uri)!r} has the scheme {scheme or '(none)'!r}, which MLflow cannot track "
            f"to; fix: use one of {', '.join(s + '://' for s in SCHEMES)} (e.g. sqlite:///mlflow.db)")
    if scheme not in ("http", "https", "databricks"):
        _check_driver(uri)
    path = sqlite_path(uri)
    if path is not None:
        _check_sqlite(uri, path)
    elif scheme in ("http", "https"):
        _check_server(uri)


DRIVER_PACKAGES = {"psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]", "pymysql": "PyMySQL",
                   "MySQLdb": "mysqlclient", "pyodbc": "pyodbc", "pg8000": "pg8000", "asyncpg": "asyncpg",
                   "pymssql": "pymssql", "mysql": "mysql-connector-python"}
"""The pip package of each database driver SQLAlchemy imports (by the module it imports)."""


def _check_driver(uri: str) -> None:
    """The database driver of ``uri`` importable (SQLAlchemy imports it on first use: an
    ImportError there would surface as an internal error)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(uri)
        url.get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise TrackingURIError(f"tracking.uri: {masked(uri)!r} is not a database URI SQLAlchemy "
                               f"knows ({masked(str(exc))}); fix: e.g. sqlite:///mlflow.db or "
                               "postgresql+psycopg://user:password@host:5432/db") from None
    except ImportError as exc:
        module = (exc.name or "").split(".")[0]
        package = DRIVER_PACKAGES.get(module, module or "its driver")
        raise TrackingURIError(
            f"tracking.uri: {masked(uri)!r} needs the Python package {package!r} (the driver "
            f"{module!r} that SQLAlchemy uses for {url.drivername}://), which is not installed; fix: "
            f"pip install {package!r} (in albench's environment)") from None


def _check_sqlite(uri: str, path: Path) -> None:
    uri = masked(uri)
    where = path.absolute()
    if where.is_dir():
        raise TrackingURIError(f"tracking.uri: {uri!r} names the folder {where}, not a database "
                               "file; fix: add a file name, e.g. sqlite:///mlflow.db")
    if where.exists():
        return
    existing = next(p for p in where.parents if p.exists())
    if not existing.is_dir():
        raise TrackingURIError(f"tracking.uri: {uri!r} puts the database under {existing}, which is "
                               "a file, not a folder; fix: choose a path in a folder")
    try:  # root passes every permission check: only a real write tells
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise TrackingURIError(f"tracking.uri: the database {where} cannot be created: {existing} is "
                               f"not writable ({exc.strerror}); fix: choose a writable folder") from None


def _check_server(uri: str) -> None:
    clean, user, password = split_credentials(uri)
    request = urllib.request.Request(f"{clean.rstrip('/')}/health")
    if user is not None or password is not None:
        basic = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {basic}")
    uri = masked(uri)
    try:
        with urllib.request.urlopen(request, timeout=SERVER_TIMEOUT_SECONDS):
            return
    except urllib.error.HTTPError as exc:
        if exc.code < 500:
            return  # something answers (a proxy that guards /health, an older server): let MLflow speak
        # a gateway whose MLflow is down (or a server that cannot reach its database): MLflow
        # would retry every call for minutes before it said anything
        raise TrackingURIError(
            f"tracking.uri: the MLflow server at {uri} answers {exc.code} {exc.reason} on /health "
            "(it, or the database behind it, is down); fix: start it (mlflow server "
            "--backend-store-uri ... --host 127.0.0.1), check its log, or correct the URI") from None
    except TimeoutError:
        raise TrackingURIError(
            f"tracking.uri: the MLflow server at {uri} took a connection but did not answer /health "
            f"within {SERVER_TIMEOUT_SECONDS:.0f} s (hung, or far too busy); fix: check its log and "
            "restart it, or give it more workers (mlflow server --workers N)") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise TrackingURIError(
                f"tracking.uri: no MLflow server answered at {uri} within {SERVER_TIMEOUT_SECONDS:.0f} s; "
                "fix: start it (mlflow server --backend-store-uri ... --host 127.0.0.1), check that "
                "the host is reachable, or correct the URI") from None
        raise TrackingURIError(
            f"tracking.uri: no MLflow server answers at {uri} ({reason}); fix: start it "
            "(mlflow server --backend-store-uri ... --host 127.0.0.1) or correct the URI") from None


@contextlib.contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """Held while an SQLite store is created or migrated (no-op for other stores)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.absolute().parent.mkdir(parents=True, exist_ok=True)
    lock = path.absolute().with_name(f".{path.name}.albench-init.lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def store_exists(uri: str) -> bool:
    """False only for an SQLite file that does not exist yet (read-only commands create none)."""
    path = sqlite_path(uri)
    return path is None or os.path.exists(path)
