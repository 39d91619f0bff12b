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
import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
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


def check_uri(uri: str, writing: bool = True) -> None:
    """Raise ``TrackingURIError`` when ``uri`` cannot work (scheme, driver, SQLite folder,
    server, a database that is not MLflow's or of another MLflow's schema); ``writing=False``
    (read-only commands): a database that can be read is enough."""
    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme not in SCHEMES:
        raise TrackingURIError(
            f"tracking.uri: {masked(uri)!r} has the scheme {scheme or '(none)'!r}, which MLflow cannot track "
            f"to; fix: use one of {', '.join(s + '://' for s in SCHEMES)} (e.g. sqlite:///mlflow.db)")
    if scheme not in ("http", "https", "databricks"):
        _check_driver(uri)
    path = sqlite_path(uri)
    if path is not None:
        _check_sqlite(uri, path, writing)
    elif scheme in ("http", "https"):
        _check_server(uri)
    elif scheme == "databricks":
        _check_databricks(uri)
    if scheme not in ("http", "https", "databricks") and store_exists(uri):
        from orchestrator.tracking.mlflow_schema import check_schema

        with creation_lock(uri, shared=True):
            check_schema(uri)


def _check_databricks(uri: str) -> None:
    """Databricks credentials present (MLflow would fail deep inside its client without them)."""
    profile = urlparse(uri).netloc or "DEFAULT"
    config = Path(os.environ.get("DATABRICKS_CONFIG_FILE", "~/.databrickscfg")).expanduser()
    if os.environ.get("DATABRICKS_HOST") or (config.is_file() and f"[{profile}]" in config.read_text(errors="replace")):
        return
    raise TrackingURIError(
        f"tracking.uri: {masked(uri)!r} needs Databricks credentials, and none are set (no "
        f"DATABRICKS_HOST, no [{profile}] profile in {config}); fix: set DATABRICKS_HOST and "
        "DATABRICKS_TOKEN (or run `databricks configure`), or track to sqlite:///mlflow.db")


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


def _check_sqlite(uri: str, path: Path, writing: bool = True) -> None:
    uri = masked(uri)
    where = path.absolute()
    if where.is_dir():
        raise TrackingURIError(f"tracking.uri: {uri!r} names the folder {where}, not a database "
                               "file; fix: add a file name, e.g. sqlite:///mlflow.db")
    if where.exists():
        if writing and (problem := read_only_problem(uri)) is not None:
            raise TrackingURIError(problem)
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


def read_only_problem(uri: str) -> str | None:
    """Why the existing SQLite database of ``uri`` cannot be written (SQLite writes a journal
    beside the file: its folder must take files too), or None (also for other stores)."""
    path = sqlite_path(uri)
    if path is None or not path.exists():
        return None
    where = path.absolute()
    try:  # root passes every permission check: only a real write tells
        with tempfile.TemporaryFile(dir=where.parent):
            pass
        with open(where, "r+b"):
            pass
    except OSError as exc:
        return (f"tracking.uri: the database {where} cannot be written ({exc.strerror}: SQLite writes "
                f"a journal in {where.parent}); fix: make the file and its folder writable, or copy "
                "the database to a writable folder; `albench status` and `albench report --out DIR` "
                "read it as it is")
    return None


def _check_server(uri: str) -> None:
    clean, user, password = split_credentials(uri)
    request = urllib.request.Request(f"{clean.rstrip('/')}/health")
    given = "the credentials in the URI"
    if user is None and password is None:  # MLflow's own variables, as its client reads them
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        given = "the credentials of MLFLOW_TRACKING_USERNAME/PASSWORD" if user or password else "no credentials"
    if user and password:  # MLflow's order: a user and password first, else a token
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {basic}")
    elif token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        request.add_header("Authorization", f"Bearer {token}")
        given = "the token of MLFLOW_TRACKING_TOKEN"
    uri = masked(uri)
    try:
        try:
            with urllib.request.urlopen(request, timeout=SERVER_TIMEOUT_SECONDS):
                pass
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise
        # something answers /health (or guards it, or is an older server): is it MLflow's API?
        request.full_url = f"{clean.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1"
        with urllib.request.urlopen(request, timeout=SERVER_TIMEOUT_SECONDS) as answer:
            body = answer.read()
        try:
            answered = json.loads(body or b"{}")
        except ValueError:
            answered = None
        if not isinstance(answered, dict):
            raise TrackingURIError(_not_mlflow(uri, f"its API answers {body[:60]!r}"))
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise TrackingURIError(
                f"tracking.uri: the MLflow server at {uri} refused {given} ({exc.code} {exc.reason}); "
                "fix: put the user and password in the URI (http://user:password@host:port) or set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)") from None
        if exc.code < 500:
            raise TrackingURIError(_not_mlflow(uri, f"{exc.code} {exc.reason} on its API")) from None
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


def _not_mlflow(uri: str, what: str) -> str:
    return (f"tracking.uri: the web server at {uri} is not an MLflow server ({what}); fix: give the "
            "address of the MLflow server (mlflow server ... --host 127.0.0.1 --port 5000), with the "
            "path it is served under if it is behind a proxy")


@contextlib.contextmanager
def creation_lock(uri: str, *, shared: bool = False) -> Iterator[None]:
    """Held while an SQLite store is created or migrated (no-op for other stores). ``shared``:
    held while one is read before MLflow opens it (a creation in progress is waited for); it
    creates nothing, so a read-only folder can be read."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    lock = path.absolute().with_name(f".{path.name}.albench-init.lock")
    if shared:
        try:
            handle = open(lock)  # noqa: SIM115 - closed below
        except OSError:  # no creation ever ran here (or it cannot be read): nothing to wait for
            yield
            return
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            yield
        return
    path.absolute().parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def store_exists(uri: str) -> bool:
    """False only for an SQLite file that does not exist yet, or is empty (read-only commands
    create none; an empty file is a database without tables)."""
    path = sqlite_path(uri)
    return path is None or (os.path.exists(path) and os.path.getsize(path) > 0)


class LockRetryingClient:
    """An MlflowClient whose calls are retried when SQLite says "database is locked".

    The driver is the only writer, but readers (``albench status``, the MLflow UI, a script)
    can hold the file long enough for a write to give up. Each MLflow write is one SQL
    transaction, rolled back on that error, so trying it again cannot log anything twice.
    """

    DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

    def __init__(self, client) -> None:
        self._client = client
        self._counting = threading.Lock()
        self.counts: Counter[str] = Counter()
        """MLflow calls made, by name (a retry is the same call); read by ``bench/tracking.py``."""

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute
        return self.retrying(attribute)

    def retrying(self, function):
        def call(*args, **kwargs):
            with self._counting:
                self.counts[function.__name__] += 1
            for delay in (*self.DELAYS, None):
                try:
                    return function(*args, **kwargs)
                except Exception as exc:
                    if delay is None or "database is locked" not in str(exc):
                        raise
                    time.sleep(delay)

        return call
