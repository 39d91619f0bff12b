"""One driver per grid, wherever the drivers run: the guard is a lease in the tracking store.

Real processes: `albench run` drivers (each with its own local Ray), `albench status`, a fresh
SQLite MLflow store that nobody created beforehand.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.conftest import write_config
from tests.test_fault_tolerance import (
    cli_here,
    db_trials,
    driver,
    fresh_db,
    kill_tree,
    long_config,
    mid_trajectory,
    statuses,
    wait_for,
)


def _status(config: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "status", str(config)],
                                cwd=config.parent, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "RAY_ADDRESS": ""})


def test_two_drivers_started_together_from_different_folders_run_each_trial_once(pool, store, tmp_path):
    """Two `albench run` of one grid at the same moment, each from its own folder with its own
    checkpoints (no shared lock file), on a tracking store that does not exist yet, while
    `albench status` reads it: one driver runs the grid, the other is refused, status never
    crashes, and every trial key ends with exactly one FINISHED run."""
    db = tmp_path / "mlflow.db"
    configs, logs = [], []
    for side in ("a", "b"):
        folder = tmp_path / side
        folder.mkdir()
        config = long_config(pool, folder, store, tracking={"uri": f"sqlite:///{db}"},
                             protocol={"initial_pool_size": 6, "query_size": 6, "cycles": 3})
        configs.append(write_config(folder / "cfg.yaml", config))
        logs.append(folder / "run.log")
    drivers = [driver(config, log) for config, log in zip(configs, logs, strict=True)]
    readers = [_status(configs[0], tmp_path / f"status{i}.log") for i in range(2)]
    try:
        codes = sorted(d.wait(timeout=300) for d in drivers)
        status_codes = [r.wait(timeout=120) for r in readers]
    finally:
        for process in drivers:
            kill_tree(process)
    texts = [" ".join(log.read_text().split()) for log in logs]
    assert codes == [0, 2], texts
    refused = texts[[d.returncode for d in drivers].index(2)]
    assert "error: another albench run" in refused and "is running this grid" in refused, refused
    for i, code in enumerate(status_codes):
        text = (tmp_path / f"status{i}.log").read_text()
        assert code == 0 and "Traceback" not in text, text
    runs = db_trials(db, writers_gone=True)
    assert Counter(status for status, _ in runs.values()) == Counter({"FINISHED": 4}), runs


def test_sigterm_marks_every_in_flight_trial_killed(pool, store, template, tmp_path):
    """SIGTERM to the driver alone (what `docker stop` sends): it stops cleanly, and no run is
    left RUNNING; the next `albench status` shows them interrupted, not 'driver died'."""
    fresh_db(template, tmp_path)
    config = write_config(tmp_path / "cfg.yaml", long_config(pool, tmp_path, store))
    log = tmp_path / "run.log"
    process = driver(config, log)
    db = tmp_path / "mlflow.db"
    try:
        wait_for(lambda: mid_trajectory(tmp_path), 180, process, log)
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=90) == 130, log.read_text()
    finally:
        kill_tree(process)
    counts = statuses(db, writers_gone=True)
    assert counts["KILLED"] >= 1 and counts["RUNNING"] == 0, db_trials(db, writers_gone=True)
    code, text = cli_here("status", str(config))  # in this process: a Python start saved
    assert code == 0, text
    assert "its driver died" not in text and "interrupted (Ctrl-C or SIGTERM)" in text, text
