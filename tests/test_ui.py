"""`albench ui` serves the MLflow UI of the config's store on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from tests.conftest import tiny_config, write_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_experiment_on_loopback(corpus, tmp_path):
    from orchestrator.tracking import open_tracker

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
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
