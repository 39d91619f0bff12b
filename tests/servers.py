"""Real servers for tests and benchmarks: a throwaway PostgreSQL cluster, an ``mlflow server``
and an S3-compatible object store (moto's standalone server), each on 127.0.0.1 on a free port.

Each is a context manager usable outside pytest (``bench/`` uses them too) that starts the
real process in a session of its own, waits until it answers, and on exit stops it by its
process group and waits until it is gone. The session fixtures at the bottom (imported by
``tests/conftest.py``) start each one at most once per test session: an ``mlflow server`` takes
7-24 s to answer on 2 cores, depending on the load. Tests that share a server keep apart by
experiment name (or by a database of their own: ``PostgresCluster.database``).

PostgreSQL refuses to run as root; as root (CI, these machines) the cluster is created and run
as the unprivileged ``postgres`` user (Debian's package makes it; else ``nobody``), in a folder
under /tmp that user owns.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST = "127.0.0.1"
PG_BIN = Path(os.environ.get("ALBENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
S3_REGION = "us-east-1"
S3_KEY = S3_SECRET = "testing"  # moto accepts any credentials unless told to check them
SERVER_START_SECONDS = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def venv_bin(name: str) -> str:
    """A console script of this interpreter's environment (``mlflow``, ``moto_server``, ``ray``)."""
    return str(Path(sys.executable).with_name(name))


def wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen | None = None,
               log: Path | None = None, timeout: float = SERVER_START_SECONDS) -> None:
    """Poll ``ready`` until it is true; fail with the log's tail if the process ends or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
    state = "ended" if process is not None and process.poll() is not None else "did not answer"
    raise RuntimeError(f"{what} {state} (waited up to {timeout:.0f} s); its log:\n{tail}")


def stop_group(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 30.0) -> None:
    """Stop a process started with ``start_new_session`` and everything in its group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):  # stragglers of the group (server workers)
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


@contextlib.contextmanager
def answering(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering every GET and POST with ``status`` (and
    ``headers``, ``body``) while the context lasts; yields its URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError, http.client.HTTPException):  # not (yet) an HTTP server
        return False


def _spawn(command: list[str], log: Path, *, env: dict | None = None, cwd: Path | None = None,
           user: str | None = None) -> subprocess.Popen:
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)


# ----------------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresCluster:
    """A running throwaway cluster; ``uri`` names its default database ``albench``."""

    port: int
    root: Path
    user: str = "albench"

    @property
    def uri(self) -> str:
        return self.uri_of("albench")

    def uri_of(self, database: str) -> str:
        return f"postgresql://{self.user}@{HOST}:{self.port}/{database}"

    def database(self, name: str | None = None) -> str:
        """Create a fresh database (a random name by default); its SQLAlchemy URI."""
        name = name or f"db_{uuid.uuid4().hex[:12]}"
        subprocess.run([str(PG_BIN / "createdb"), "-h", HOST, "-p", str(self.port), "-U", self.user, name],
                       check=True, capture_output=True, text=True, timeout=60)
        return self.uri_of(name)


def _unprivileged_user() -> str | None:
    """Who runs PostgreSQL: None (this user) unless we are root, who may not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("PostgreSQL cannot run as root and there is no 'postgres' or 'nobody' user")


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """initdb + postgres on 127.0.0.1 (trust auth, no Unix socket outside its folder, fsync off)."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"no PostgreSQL binaries under {PG_BIN} (Debian: apt-get install postgresql; "
                           "or set ALBENCH_PG_BIN)")
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="albench-pg-", dir="/tmp"))  # short: Unix socket paths
    data = root / "data"
    log = root / "postgres.log"
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    process = None
    try:
        initdb = [str(PG_BIN / "initdb"), "-D", str(data), "-U", "albench", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions"]
        if user is not None:
            initdb = ["runuser", "-u", user, "--", *initdb]
        done = subprocess.run(initdb, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        port = free_port()
        process = _spawn([str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port),
                          "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={root}",
                          "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                         log, user=user)
        cluster = PostgresCluster(port=port, root=root)

        def accepting() -> bool:
            probe = subprocess.run([str(PG_BIN / "pg_isready"), "-h", HOST, "-p", str(port), "-U", "albench"],
                                   capture_output=True, timeout=30, check=False)
            return probe.returncode == 0

        wait_until(accepting, "PostgreSQL", process, log)
        cluster.database("albench")
        yield cluster
    finally:
        if process is not None:
            stop_group(process, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
        shutil.rmtree(root, ignore_errors=True)


# -------------------------------------------------------------------------------- mlflow server


@dataclass
class MlflowServer:
    uri: str
    backend_uri: str
    process: subprocess.Popen
    log: Path
    env: dict = field(default_factory=dict)


@contextlib.contextmanager
def mlflow_server(backend_uri: str, root: Path, *, artifacts_destination: str | None = None,
                  env: dict | None = None, extra_args: tuple[str, ...] = ()) -> Iterator[MlflowServer]:
    """``mlflow server --workers 1`` on 127.0.0.1 over ``backend_uri`` (SQLite file or PostgreSQL).

    Artifacts are served through the server (clients need no store credentials), kept in
    ``root/artifacts`` unless ``artifacts_destination`` (e.g. ``s3://bucket/artifacts``, with
    its credentials in ``env``) says otherwise. Ready when ``/health`` answers.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / f"mlflow-server-{port}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environment.update(env or {})
    command = [venv_bin("mlflow"), "server", "--backend-store-uri", backend_uri, "--host", HOST,
               "--port", str(port), "--workers", "1", "--serve-artifacts",
               "--artifacts-destination", artifacts_destination or str(root / "artifacts"), *extra_args]
    process = _spawn(command, log, env=environment, cwd=root)
    uri = f"http://{HOST}:{port}"
    try:
        wait_until(lambda: http_answers(f"{uri}/health"), f"mlflow server on {backend_uri}", process, log)
        yield MlflowServer(uri=uri, backend_uri=backend_uri, process=process, log=log, env=env or {})
    finally:
        stop_group(process)


# ---------------------------------------------------------------------------- S3 (moto server)


@dataclass
class S3Server:
    """moto's standalone S3 server; ``env`` is what a client (pyarrow, boto3, MLflow) needs."""

    endpoint: str
    process: subprocess.Popen
    region: str = S3_REGION

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ENDPOINT_URL_S3": self.endpoint,
                "MLFLOW_S3_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": S3_KEY,
                "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region, "AWS_EC2_METADATA_DISABLED": "true"}

    def filesystem(self):
        """A pyarrow S3 filesystem on this server (explicit endpoint, region and credentials)."""
        from pyarrow import fs

        scheme, _, address = self.endpoint.partition("://")
        return fs.S3FileSystem(endpoint_override=address, scheme=scheme, region=self.region,
                               access_key=S3_KEY, secret_key=S3_SECRET, allow_bucket_creation=True)

    def bucket(self, name: str | None = None) -> str:
        """Create a fresh bucket (a random name by default); its name."""
        name = name or f"albench-{uuid.uuid4().hex[:12]}"
        self.filesystem().create_dir(name)
        return name


@contextlib.contextmanager
def s3_server(root: Path) -> Iterator[S3Server]:
    """``moto_server`` on 127.0.0.1 on a free port, ready when it answers HTTP."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / f"moto-{port}.log"
    environment = {**os.environ, "AWS_DEFAULT_REGION": S3_REGION}
    process = _spawn([venv_bin("moto_server"), "-H", HOST, "-p", str(port)], log, env=environment, cwd=root)
    endpoint = f"http://{HOST}:{port}"
    try:
        wait_until(lambda: http_answers(f"{endpoint}/moto-api/"), "moto S3 server", process, log)
        yield S3Server(endpoint=endpoint, process=process)
    finally:
        stop_group(process)


# ------------------------------------------------------------- session fixtures (see conftest)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster per test session."""
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def mlflow_server_postgres(postgres, tmp_path_factory) -> Iterator[MlflowServer]:
    """One ``mlflow server`` on PostgreSQL per test session (tests keep apart by experiment).

    Without MLflow's job execution (GenAI jobs albench never submits): its 8 ``huey_consumer``
    processes took 16 CPU-seconds in the 10 s after the server answered (both cores, taken from
    the tests running then) and 3 s more to stop (measured 2026-12-03, load ~1.5)."""
    with mlflow_server(postgres.database("mlflow"), tmp_path_factory.mktemp("mlflow-pg"),
                       env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}) as server:
        yield server


@pytest.fixture(scope="session")
def s3(tmp_path_factory) -> Iterator[S3Server]:
    """One moto S3 server per test session (tests keep apart by bucket: ``s3.bucket()``)."""
    with s3_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


# ------------------------------------------------------------ a proxy that can hold responses


@dataclass
class Exchange:
    """One request that went through a ``HoldingProxy``: method, path, JSON body (or None)."""

    method: str
    path: str
    body: dict | None


class HoldingProxy:
    """An HTTP/1.1 forwarding proxy on 127.0.0.1 in front of a real server (``upstream``).

    Every request is forwarded, so the server applies it. The answers of the requests that
    ``hold``'s predicate accepts (it sees every request, in arrival order) are held back
    (``held``): the client waits on writes the server has recorded and never learns so, the
    moment a client killed with writes in flight leaves behind. Other requests are answered as
    usual. ``release`` drops the held answers (their connections are closed unanswered).
    """

    HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                            "proxy-connection", "content-length"})

    def __init__(self, upstream: str, basic_auth: tuple[str, str] | None = None) -> None:
        """``basic_auth`` (user, password): answer 401 to every request without them, as a
        reverse proxy guarding an MLflow server with HTTP basic auth does."""
        import base64
        import http.client
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlparse

        target = urlparse(upstream)
        proxy = self
        hop = self.HOP_BY_HOP
        self.held: list[Exchange] = []
        self.refused = 0
        """Requests answered 401 (``basic_auth``)."""
        expected = None if basic_auth is None else \
            "Basic " + base64.b64encode(":".join(basic_auth).encode()).decode()
        self._predicate: Callable[[Exchange], bool] | None = None
        self._released = threading.Event()
        self._lock = threading.Lock()

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive towards the client, as MLflow's expects

            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if expected is not None and self.headers.get("Authorization") != expected:
                    proxy.refused += 1
                    self.send_response(401, "Unauthorized")
                    self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                exchange = Exchange(self.command, self.path, body)
                with proxy._lock:
                    hold = proxy._predicate is not None and proxy._predicate(exchange)
                # one upstream connection per request: a kept-alive one may be closed by the
                # server between requests, and a request must never be sent twice
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
                    connection.request(self.command, self.path, body=raw, headers=headers)
                    answer = connection.getresponse()
                    payload = answer.read()
                finally:
                    connection.close()
                if hold:
                    with proxy._lock:
                        proxy.held.append(exchange)
                    proxy._released.wait()
                    self.close_connection = True  # dropped: the client never hears back
                    return
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in hop:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request, client_address) -> None:
                if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away
                    super().handle_error(request, client_address)

        self._server = Server((HOST, 0), Forward)
        self.uri = f"http://{HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="holding-proxy",
                                        daemon=True)
        self._thread.start()

    def hold(self, predicate: Callable[[Exchange], bool]) -> None:
        """Hold the answers of the requests ``predicate`` accepts (called under a lock)."""
        with self._lock:
            self._predicate = predicate

    def held_now(self) -> list[Exchange]:
        with self._lock:
            return list(self.held)

    def release(self) -> None:
        """Drop the held answers; answer everything from now on."""
        with self._lock:
            self._predicate = None
        self._released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def holding_proxy(upstream: str, basic_auth: tuple[str, str] | None = None) -> Iterator[HoldingProxy]:
    proxy = HoldingProxy(upstream, basic_auth)
    try:
        yield proxy
    finally:
        proxy.close()
