"""The MLflow server gone mid-grid and left down: the driver stops by itself, within
``tracking.outage_seconds`` plus a minute, with exit 1 and a message saying that what was
recorded is kept and a rerun resumes; the rerun (server back) gives the curves of a clean run.
A real ``mlflow server`` (SQLite behind it) killed with SIGKILL; the driver is the real CLI."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from orchestrator.config import parse_config
from orchestrator.grid import prepare_plan
from orchestrator.tracking import open_tracker
from tests.conftest import write_config
from tests.ray_cluster import kill_tree
from tests.servers import mlflow_server, stop_group
from tests.test_fault_tolerance import (  # noqa: F401 - reference: a fixture, used by name
    NO_REPORT,
    assert_done_once,
    cli_here,
    db_trials,
    driver,
    long_config,
    reference,
    wait_for,
)

BOUND = 10.0
"""tracking.outage_seconds of the grid (the default is minutes)."""


def _config(pool: Path, workdir: Path, store: Path, uri: str) -> dict:
    config = long_config(pool, workdir, store)
    config["tracking"] = {"uri": uri, "experiment": "outage", "outage_seconds": BOUND}
    return config


def test_the_driver_stops_within_the_bound_when_the_server_is_gone_and_a_rerun_completes(
        reference, pool, store, tmp_path):  # noqa: F811 - the fixture imported above
    root = tmp_path / "server"
    backend = f"sqlite:///{root / 'mlflow.db'}"
    log = tmp_path / "driver.log"
    with mlflow_server(backend, root) as server:
        config = write_config(tmp_path / "grid.yaml", _config(pool, tmp_path, store, server.uri))
        process = driver(config, log)
        try:
            finished = lambda: sum(s == "FINISHED" for s, _ in db_trials(root / "mlflow.db").values())
            wait_for(lambda: finished() >= 1, 240, process, log)
            stop_group(server.process, signal.SIGKILL)  # gone, and left down
            gone = time.monotonic()
            try:
                code = process.wait(timeout=BOUND + 60)
            except Exception:  # noqa: BLE001 - the driver hangs: that is the failure
                raise AssertionError(f"the driver still runs {BOUND + 60:.0f} s after the server "
                                     f"went away; its log:\n{log.read_text()}") from None
            took = time.monotonic() - gone
        finally:
            kill_tree(process)
    text = " ".join(log.read_text().split())
    assert code == 1, (code, text)
    assert "has taken no write for" in text and f"tracking.outage_seconds: {BOUND:g}" in text, text
    assert "what was recorded is kept" in text and "to resume" in text and "Traceback" not in text, text
    assert took <= BOUND + 60, took

    with mlflow_server(backend, root) as again:  # back (on another port), the same database
        config = write_config(tmp_path / "grid.yaml", _config(pool, tmp_path, store, again.uri))
        code, output = cli_here("run", str(config), NO_REPORT)
        assert code == 0, output
        plan = prepare_plan(parse_config(_config(pool, tmp_path, store, again.uri)))
        assert_done_once(plan, open_tracker(again.uri, "outage"), reference)


def test_the_object_store_of_the_checkpoints_gone_mid_grid_is_said_and_exits_1(pool, store, tmp_path):
    """The checkpoints on a real S3 server (moto) that is SIGKILLed mid-trajectory: the driver
    stops with exit 1, naming store.checkpoints and what failed, and says a rerun resumes; no
    internal error, no traceback."""
    from tests.conftest import write_config as write
    from tests.servers import s3_server
    from tests.test_fault_tolerance import mid_trajectory

    with s3_server(tmp_path / "moto") as s3:
        bucket = s3.bucket()
        config = long_config(pool, tmp_path, store)
        config["store"]["checkpoints"] = f"s3://{bucket}/checkpoints"
        path = write(tmp_path / "grid.yaml", config)
        log = tmp_path / "driver.log"
        process = driver(path, log, env=s3.env)
        try:
            wait_for(lambda: mid_trajectory(tmp_path), 240, process, log)
            stop_group(s3.process, signal.SIGKILL)
            code = process.wait(timeout=120)
        finally:
            kill_tree(process)
    text = " ".join(log.read_text().split())
    assert code == 1, (code, text)
    assert "error: store.checkpoints: " in text and "the checkpoint of trial" in text, text
    assert f"s3://{bucket}/checkpoints" in text and "to resume" in text, text
    assert "internal error" not in text and "Traceback" not in text, text


def test_sigterm_stops_a_driver_whose_server_is_gone_within_a_minute(pool, store, tmp_path):
    """The server gone, the outage bound far away (10 minutes): SIGTERM still ends the driver
    within a minute with exit 130 (it waits at most 20 s for its last writes)."""
    root = tmp_path / "server"
    log = tmp_path / "driver.log"
    with mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root) as server:
        config = _config(pool, tmp_path, store, server.uri)
        config["tracking"]["outage_seconds"] = 600
        process = driver(write_config(tmp_path / "grid.yaml", config), log)
        try:
            wait_for(lambda: any(step > 0 for _, step in db_trials(root / "mlflow.db").values()), 240,
                     process, log)
            stop_group(server.process, signal.SIGKILL)
            time.sleep(3)  # its writes now wait on a server that is gone
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=60)
            except Exception:  # noqa: BLE001 - the driver hangs: that is the failure
                raise AssertionError(f"SIGTERM did not stop the driver in 60 s; its log:\n{log.read_text()}") from None
        finally:
            kill_tree(process)
    text = " ".join(log.read_text().split())
    assert code == 130 and "interrupted" in text and "to resume" in text, (code, text)
    assert "Traceback" not in text, text
