"""`albench ui` serves the MLflow UI of the config's store on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import tiny_config, write_config
from tests.test_fault_tolerance import descendants


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_experiment_on_loopback(corpus, tmp_path):
    from orchestrator.tracking import open_tracker
    from orchestrator.ui import check_port

    config = tiny_config(corpus, tmp_path)
    open_tracker(config["tracking"]["uri"], config["name"])  # the experiment exists, as after a run
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "ui", str(write_config(tmp_path / "c.yaml", config)),
         "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=tiny")
                body = urllib.request.urlopen(request, timeout=5).read().decode()
            except OSError:
                assert process.poll() is None, process.stdout.read().decode()
                time.sleep(1)
        assert body is not None and '"name": "tiny"' in body.replace('":"', '": "')
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=False)
        if listening.returncode == 0:  # where ss exists: bound to loopback only
            assert listening.stdout.strip() and all("127.0.0.1" in line for line in listening.stdout.splitlines())

        # a second UI on the same port: a clear error, not a server that fails after its banner
        second = subprocess.run([sys.executable, "-m", "orchestrator.cli", "ui", "--port", str(port)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"error: port {port} on 127.0.0.1 is in use" in " ".join(second.stdout.split())

        server = descendants(process.pid)
        assert server, "albench ui started no server process"
        os.kill(process.pid, signal.SIGTERM)  # albench alone, as a service manager stops it
        assert process.wait(timeout=60) == 143
        banner = " ".join(process.stdout.read().decode().split())
        experiment = open_tracker(config["tracking"]["uri"], config["name"], create=False).experiment_id
        assert (f"the grid's runs: http://127.0.0.1:{port}/#/experiments/{experiment}/runs"
                "?workflowType=machine_learning") in banner, banner
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in server):
            time.sleep(0.2)
        assert not [pid for pid in server if _alive(pid)], "the MLflow server outlived albench ui"
        # the port is free again: bound as a server binds it (SO_REUSEADDR), since the server
        # closed the test's HTTP connections first and their TIME_WAIT entries hold the port
        # against a plain bind for a minute
        check_port("127.0.0.1", port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
