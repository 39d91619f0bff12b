"""``albench ui``: the MLflow UI as a child process that lives and dies with albench.

The port is checked before the server starts (a busy port is a clear error, not a server that
fails after printing a banner); SIGTERM or Ctrl-C to albench stops the server and everything it
started (its process group), so no orphan keeps serving the port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

STOP_SECONDS = 20.0


class PortBusyError(OSError):
    """The UI's port is taken on that interface."""


def check_port(host: str, port: int) -> None:
    """Raise ``PortBusyError`` unless ``host:port`` can be bound now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortBusyError(f"port {port} on {host} is in use ({exc.strerror}); fix: stop what "
                                f"serves it, or choose another with --port") from None


def serve(uri: str, host: str, port: int, workers: int) -> int:
    """Run the MLflow UI until it ends or albench is told to stop; its exit code."""
    check_port(host, port)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", host, "--port", str(port), "--workers", str(workers)]
    # MLflow's job execution (GenAI jobs: 8 more processes, 16 CPU-seconds in the 10 s after the
    # server answers, on 2 cores) serves nothing a browsed grid needs; the user's setting wins
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    server = subprocess.Popen(command, env=env, start_new_session=True)
    stopping: list[tuple[int, float]] = []

    def stop(signum, frame):  # only signal here: the loop below waits and escalates
        if not stopping:
            stopping.append((signum, time.monotonic()))
            _signal_group(server, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while server.poll() is None:
            if stopping and time.monotonic() - stopping[0][1] > STOP_SECONDS:
                _signal_group(server, signal.SIGKILL)
            time.sleep(0.1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _signal_group(server, signal.SIGKILL)  # whatever the server forked and left behind
        server.wait()
    if stopping:
        return 128 + stopping[0][0]
    return server.returncode or 1  # the server never ends by itself while it serves: a failure


def _signal_group(server: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(server.pid, sig)
    except ProcessLookupError:
        pass
