"""A real multi-node Ray cluster on this machine, for tests: ``ray start --head`` plus worker
nodes (``ray start --address``), token authentication on by default.

Each node is a ``ray start --block`` process in a session (process group) of its own, with its
own working directory, a temp dir of its own and ports of its own, so the test session's own Ray
(``ray_session``) is never touched: teardown signals exactly these process groups and their
descendants (never ``ray stop``, which stops every Ray on the machine).

The token is generated per cluster (``secrets.token_hex(32)``) into a file of the cluster's folder
and handed to every node and client through the environment (``RAY_AUTH_MODE=token``,
``RAY_AUTH_TOKEN_PATH``: Ray reads ``RAY_AUTH_TOKEN`` first, then the file ``RAY_AUTH_TOKEN_PATH``
names, then ``~/.ray/auth_token``); ``~/.ray`` is left alone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, from /proc (Linux)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[int(entry.name)] = (int(fields[1]), fields[0])
    return found


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for child, (parent, _) in processes().items():
        children.setdefault(parent, []).append(child)
    family, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            family.append(child)
            todo.append(child)
    return family


def kill_tree(process: subprocess.Popen | int, sig: int = signal.SIGKILL) -> None:
    """Signal a process group and every descendant (Ray workers have process groups of their
    own), then wait until they are gone."""
    pid = process if isinstance(process, int) else process.pid
    family = descendants(pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    for member in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, sig)
    if not isinstance(process, int):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = processes()
        if not any(m in alive and alive[m][1] != "Z" for m in family):
            return
        time.sleep(0.1)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_tree(process: subprocess.Popen) -> None:
    """SIGKILL to ``process``'s group and every descendant at once (a test cluster keeps nothing
    worth a graceful stop: SIGTERM to ``ray start --block`` drains the node and gives each of its
    processes a second, ~10 s a node), then to whatever of the descendants it had is left (those
    orphaned meanwhile too, when they still run the same command: a pid is never reused blindly)."""
    family = {pid: cmdline(pid) for pid in descendants(process.pid)}
    kill_tree(process)
    for pid, command in family.items():
        if command and cmdline(pid) == command:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class RayCluster:
    """A running cluster: its addresses, the environment its clients need, its node processes."""

    address: str
    """The GCS address (``RAY_ADDRESS`` for a driver on the head)."""
    dashboard: str
    """The jobs API (``ray job submit --address``)."""
    client_address: str
    """The Ray Client address (``ray://``), which albench refuses."""
    env: dict[str, str]
    """The environment of every node; a client adds ``RAY_ADDRESS``."""
    root: Path
    nodes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def client_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, "RAY_ADDRESS": self.address, **extra}

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def ray(self, *args: str, timeout: float = 120, env: dict | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        """A ``ray`` CLI command as a client of this cluster (stdout and stderr together)."""
        return subprocess.run([RAY, *args], check=False, env=env or self.env, cwd=cwd or self.root, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


def _wait(condition, what: str, cluster: RayCluster, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}) before {what}:\n{cluster.log(name)}")
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}:\n{cluster.log(name)}")


def _node_ports() -> list[str]:
    """Ports of a node's own services: two nodes on one machine must not share them."""
    return [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"]


@contextlib.contextmanager
def ray_cluster(workers: int = 1, *, head_cpus: int = 1, worker_cpus: int = 1, token: bool = True,
                dashboard: bool = True, env: dict[str, str] | None = None,
                drop_env: tuple[str, ...] = ()) -> Iterator[RayCluster]:
    """A head node and ``workers`` worker nodes on 127.0.0.1, each in a folder of its own (also
    its working directory), up once every node is registered; stopped on exit.

    ``token``: token authentication on (a fresh token file, named in ``env``); off:
    ``RAY_AUTH_MODE=disabled``.
    ``dashboard``: the jobs API (``ray job submit``) on a free port. ``env``: added to every node's
    environment (this checkout comes first on ``PYTHONPATH`` and its interpreter's folder first on
    ``PATH``, so drivers and workers run the code under test); ``drop_env``: prefixes of variables
    the nodes must not inherit (``AWS_``: nodes with no store credentials of their own).
    """
    root = Path(tempfile.mkdtemp(prefix="albench-cl-", dir="/tmp"))  # unix socket paths: <108 bytes
    base = {k: v for k, v in os.environ.items()
            if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH") and not k.startswith(drop_env)}
    base.update({
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "RAY_AUTH_MODE": "token" if token else "disabled",
    })
    if token:  # what the README says to do: one generated token in a file every node and client reads
        token_file = root / "ray_auth_token"
        token_file.write_text(secrets.token_hex(32) + "\n")
        token_file.chmod(0o600)
        base["RAY_AUTH_TOKEN_PATH"] = str(token_file)
    base.update(env or {})
    port, dashboard_port, client_port = free_port(), free_port(), free_port()
    cluster = RayCluster(address=f"127.0.0.1:{port}", dashboard=f"http://127.0.0.1:{dashboard_port}",
                         client_address=f"ray://127.0.0.1:{client_port}", env=base, root=root)
    common = ["--disable-usage-stats", "--block", "--object-store-memory=100000000"]
    try:
        head_dir = root / "head"
        head_dir.mkdir()
        head_args = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                     f"--num-cpus={head_cpus}", "--num-gpus=0", f"--temp-dir={root / 'tmp'}",
                     f"--ray-client-server-port={client_port}", *_node_ports(), *common]
        head_args += (["--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"]
                      if dashboard else ["--include-dashboard=false"])
        cluster.nodes["head"] = _start(head_args, cluster, "head", head_dir)
        gcs_log = root / "tmp" / "session_latest" / "logs" / "gcs_server.out"

        def registered(count: int):
            return lambda: gcs_log.exists() and gcs_log.read_text().count("Registering new node") >= count

        _wait(registered(1), "the head node", cluster, cluster.nodes["head"], "head")
        for index in range(workers):
            name = f"worker{index}"
            (root / name).mkdir()
            cluster.nodes[name] = _start(
                [RAY, "start", f"--address={cluster.address}", "--node-ip-address=127.0.0.1",
                 f"--num-cpus={worker_cpus}", "--num-gpus=0", *_node_ports(), *common],
                cluster, name, root / name)
            _wait(registered(index + 2), f"worker node {index}", cluster, cluster.nodes[name], name)
        if dashboard:
            _wait(lambda: _jobs_api_answers(cluster), "the jobs API", cluster, cluster.nodes["head"], "head")
        yield cluster
    finally:
        for name in reversed(list(cluster.nodes)):
            stop_tree(cluster.nodes[name])
        shutil.rmtree(root, ignore_errors=True)


def _jobs_api_answers(cluster: RayCluster) -> bool:
    """What ``ray job list`` asks (``GET /api/jobs/``, with the token when auth is on) answers
    200: polled over HTTP, not by a ``ray`` CLI process (~2 s each on 2 cores)."""
    headers = {}
    if token_path := cluster.env.get("RAY_AUTH_TOKEN_PATH"):
        headers["authorization"] = f"Bearer {Path(token_path).read_text().strip()}"
    try:
        request = urllib.request.Request(f"{cluster.dashboard}/api/jobs/", headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _start(args: list[str], cluster: RayCluster, name: str, cwd: Path) -> subprocess.Popen:
    with open(cluster.root / f"{name}.log", "w") as out:
        return subprocess.Popen(args, env=cluster.env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
