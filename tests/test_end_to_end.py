"""A tiny grid on a real local Ray with real Parquet files, recorded in a real SQLite MLflow
store and (the same tests) through a real ``mlflow server`` with PostgreSQL behind it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from orchestrator.config import parse_config
from orchestrator.grid import prepare_plan
from orchestrator.tracking import open_tracker
from tests.conftest import embed_in_process, tiny_config, write_config
from tests.conftest import run_in_process as _run
from workers.metrics import normalized_auc


def _curves(plan, tracker):
    runs = tracker.trial_runs()
    return {t.trial_key: tracker.curve(runs[t.trial_key].run_id) for t in plan.trials}


@pytest.fixture(scope="module", params=["sqlite-file", "server-on-postgresql"])
def tracking_uri(request) -> str | None:
    """Where the grid records: None (the config's own SQLite file), or a real server's URI."""
    if request.param == "sqlite-file":
        return None
    return request.getfixturevalue("mlflow_server_postgres").uri


@pytest.fixture(scope="module")
def finished_grid(ray_session, corpus, tmp_path_factory, tracking_uri):
    workdir = tmp_path_factory.mktemp("grid")
    config = tiny_config(corpus, workdir, resources={"max_concurrency": 2})
    if tracking_uri is not None:  # a shared server: an experiment of its own
        config.update(name=f"tiny-{uuid.uuid4().hex[:8]}", tracking={"uri": tracking_uri})
    plan, tracker, summary, output = _run(config)
    return config, plan, tracker, summary, output


def test_every_trial_finished_with_one_point_per_cycle(finished_grid):
    _, plan, tracker, summary, _output = finished_grid
    assert summary.finished == len(plan.trials) == 8 and not summary.failed
    runs = tracker.trial_runs()
    assert set(runs) == {t.trial_key for t in plan.trials}
    expected_steps = [6, 12, 18, 24]  # initial pool, then 3 cycles of 6
    for trial in plan.trials:
        run = runs[trial.trial_key]
        assert run.status == "FINISHED"
        for metric in ("accuracy", "macro_f1", "query_seconds", "fit_seconds"):
            history = tracker.client.get_metric_history(run.run_id, metric)
            assert sorted(m.step for m in history) == expected_steps, metric
        for metric in ("accuracy", "macro_f1"):
            steps, values = zip(*tracker.curve(run.run_id, metric))
            assert run.metrics[f"auc_{metric}"] == pytest.approx(normalized_auc(np.array(steps), np.array(values)))
            assert run.metrics[f"final_{metric}"] == values[-1]
        assert run.tags["albench.trial_key"] == trial.trial_key
        full = tracker.client.get_run(run.run_id)
        assert full.data.params["strategy"] == trial.strategy.label
        assert full.data.params["protocol.query_size"] == "6"
        assert full.data.tags["mlflow.parentRunId"] == tracker.parent_run(trial.dataset, trial.embedder)


def test_learning_curves_are_informative(finished_grid):
    _, plan, tracker, _, _ = finished_grid
    runs = tracker.trial_runs()
    finals = [runs[t.trial_key].metrics["final_accuracy"] for t in plan.trials if t.embedder == "tfidf"]
    assert np.mean(finals) > 0.6  # three easy topics: far above chance (1/3)


def test_second_run_skips_everything(finished_grid):
    from orchestrator.checkpoints import CheckpointStore
    from workers.trajectory import Checkpoint

    config, plan, tracker, _, _ = finished_grid
    checkpoints = CheckpointStore(config["store"]["checkpoints"])
    left = plan.trials[0].trial_key  # what a driver killed between a trial's end and its removal leaves
    checkpoints.save(left, Checkpoint(1, [0, 1], {}))
    _, _, summary, output = _run(config)
    assert summary.skipped == len(plan.trials) and summary.finished == 0
    assert checkpoints.trial_keys() == []
    assert "embedding" not in output and "found, skipped" not in output  # store not even read
    assert len(tracker.trial_runs()) == len(plan.trials)


def test_same_curves_with_one_and_with_two_workers(finished_grid, tmp_path):
    config, plan, tracker, _, _ = finished_grid
    one_worker = dict(config, tracking={"uri": f"sqlite:///{tmp_path / 'one.db'}"},
                      resources={"max_concurrency": 1})
    plan_one, tracker_one, summary, _ = _run(one_worker)
    assert summary.finished == len(plan.trials)
    assert _curves(plan_one, tracker_one) == _curves(plan, tracker)

    # bench/compare_runs.py, the before/after check of refactorings, says so too
    from bench import compare_runs

    name = config["name"]
    assert compare_runs.main(tracker.uri, tracker_one.uri, name) == 0
    first = compare_runs.read(tracker.uri, name)
    assert compare_runs.compare(first, compare_runs.read(tracker_one.uri, name)) == []
    key, dropped = sorted(first)[:2]
    run, curves = first[key]
    changed = dict(first, **{key: (run, {**curves, "accuracy": curves["accuracy"][:-1]})})
    del changed[dropped]
    problems = compare_runs.compare(first, changed)
    assert len(problems) == 2 and "only in the first store" in problems[0], problems
    assert problems[1].startswith(f"{key}: accuracy curves differ"), problems


def test_the_results_table_reads_every_trial_and_curve_in_bulk(finished_grid):
    from collections import Counter

    from orchestrator.results import CYCLE_METRICS, read_results

    _, plan, tracker, _, _ = finished_grid
    before = Counter(tracker.client.counts)
    results = read_results(tracker, plan.trials)
    calls = tracker.client.counts - before
    # one bulk query (SQL) or request (server) per metric, not one call per trial
    assert calls["get_metric_history_bulk"] == len(CYCLE_METRICS) and not calls["get_metric_history"], calls
    trials = results.trials.set_index("trial_key")
    assert list(trials.index) == [t.trial_key for t in plan.trials]
    assert set(trials["status"]) == {"FINISHED"}
    runs = tracker.trial_runs()
    for trial in plan.trials:
        row = trials.loc[trial.trial_key]
        assert (row["dataset"], row["embedder"], row["strategy"], row["seed"]) == (
            trial.dataset, trial.embedder, trial.strategy.label, trial.seed)
        assert row["auc_accuracy"] == runs[trial.trial_key].metrics["auc_accuracy"]
        assert row["param.protocol.query_size"] == "6"
        points = results.curves[results.curves["trial_key"] == trial.trial_key]
        for metric in CYCLE_METRICS:
            expected = tracker.curve(runs[trial.trial_key].run_id, metric)
            assert list(zip(points["step"], points[metric], strict=True)) == expected, metric


def test_status_shows_every_trial_done(finished_grid, tmp_path):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    config, plan, _, _, _ = finished_grid
    result = CliRunner().invoke(app, ["status", str(write_config(tmp_path / "c.yaml", config))])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert f"{len(plan.trials)} trials: 8 done, 0 failed, 0 running, 0 pending (no albench run is active)" in text
    assert "interrupted" not in text and "failed" not in text.rsplit("pending", 1)[1], text


def test_the_report_reads_every_trial_and_curve(finished_grid, tmp_path):
    """``albench report`` on the same grid, whichever backend holds it: every trial, every point."""
    import pandas as pd
    from typer.testing import CliRunner

    from orchestrator.cli import app

    config, plan, tracker, _, _ = finished_grid
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", str(write_config(tmp_path / "c.yaml", config)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = pd.read_parquet(out / "results.parquet").set_index("trial_key")
    runs = tracker.trial_runs()
    assert sorted(results.index) == sorted(t.trial_key for t in plan.trials)
    assert set(results["status"]) == {"FINISHED"}
    for trial in plan.trials:
        assert results.loc[trial.trial_key, "auc_accuracy"] == runs[trial.trial_key].metrics["auc_accuracy"]
    curves = pd.read_parquet(out / "curves.parquet")
    assert len(curves) == len(plan.trials) * (config["protocol"]["cycles"] + 1)
    assert (out / "index.html").stat().st_size > 10_000


def test_adding_a_seed_runs_only_the_new_trials(finished_grid):
    config, plan, _tracker, _, _ = finished_grid
    _, _, summary, _ = _run(dict(config, seeds=[0, 1, 2]))
    assert summary.skipped == len(plan.trials) and summary.finished == 4


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize(
    "mutation,message",
    [
        (lambda c: c["strategies"].append({"name": "badgee"}), "strategies[2].name: unknown query strategy"),
        (lambda c: c["datasets"][0].update(source={"type": "builtin", "name": "imdb"}), "imdb"),
        (lambda c: c["embedders"].append({"name": "x", "model": "no-such-model"}), "embedders[2]"),
        (lambda c: c["protocol"].update(cycles=500), "exceed dataset 'topics'"),
    ],
    ids=["unknown-strategy", "unknown-dataset", "unknown-model", "budget-too-large"],
)
def test_bad_input_exits_non_zero_and_damages_nothing(finished_grid, tracking_uri, tmp_path, mutation, message):
    if tracking_uri is not None:
        pytest.skip("config errors are refused before the tracking store is opened: one backend is enough")
    config, _plan, tracker, _, _ = finished_grid
    bad = {**config, "datasets": [dict(d, source=dict(d["source"])) for d in config["datasets"]],
           "strategies": list(config["strategies"]), "embedders": list(config["embedders"]),
           "protocol": dict(config["protocol"])}
    mutation(bad)
    store = Path(config["store"]["path"])
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*.parquet")}
    result = _cli("run", str(write_config(tmp_path / "bad.yaml", bad)), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in " ".join(result.stdout.split()), result.stdout
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*.parquet")} == before
    assert all(r.status == "FINISHED" for r in tracker.trial_runs().values())


def test_single_class_dataset_is_a_clear_error(corpus, tmp_path):
    import pandas as pd

    one_class = tmp_path / "one.parquet"
    pd.DataFrame({"text": ["a b c", "d e f", "g h i"], "label": ["x", "x", "x"]}).to_parquet(one_class)
    config = tiny_config(one_class, tmp_path)
    config["datasets"][0]["source"] = {"type": "file", "train": str(one_class)}
    result = _cli("validate", str(write_config(tmp_path / "c.yaml", config)), cwd=tmp_path)
    assert result.returncode == 2
    assert "single class" in result.stdout and "datasets[0]" in result.stdout


def test_embedding_stage_finds_the_store_and_skips(finished_grid):
    from workers.store import EmbeddingStore

    config, plan, _, _, _ = finished_grid
    store = EmbeddingStore(config["store"]["path"])
    before = {p: p.stat().st_mtime_ns for p in store.root.rglob("*.parquet")}
    result, output = embed_in_process(plan, store)
    assert output.count("found, skipped") == len(plan.jobs) == 2 and not result.errors
    assert {p: p.stat().st_mtime_ns for p in store.root.rglob("*.parquet")} == before
    assert all(d.train_x.dtype == np.float32 and d.train_x.shape[0] == 300 for d in result.data.values())


def test_the_embedding_stage_has_its_own_run(finished_grid):
    """One run of kind ``embedding`` with each computed entry's throughput and device; it is not
    a trial (status and resume read trial runs only)."""
    _, plan, tracker, _, _ = finished_grid
    runs = tracker.client.search_runs([tracker.experiment_id], filter_string="tags.`albench.kind` = 'embedding'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.metrics["entries_computed"] == len(plan.jobs)
    for job in plan.jobs:
        cell = f"{job.dataset_name}/{job.embedder.name}"
        assert run.data.metrics[f"{cell}/rows"] > 0 and run.data.metrics[f"{cell}/texts_per_s"] > 0
        assert run.data.params[f"{cell}/device"] == "cpu"
        assert run.data.params[f"{cell}/precision"] == "float32"
    assert run.info.run_id not in {r.run_id for r in tracker.all_trial_runs()}


def test_four_concurrent_trajectories_and_a_competing_sqlite_lock_lose_no_metric(ray_session, corpus, tmp_path):
    """Four actors at once while another process-like client keeps taking SQLite's write lock:
    the driver (the only MLflow writer) retries, and every point of every curve arrives."""
    import sqlite3
    import threading
    import time

    config = tiny_config(corpus, tmp_path, resources={"cpus_per_trajectory": 0.5, "max_concurrency": 4},
                         seeds=[0, 1, 2])
    database = tmp_path / "mlflow.db"
    open_tracker(config["tracking"]["uri"], config["name"])  # create the schema first
    stop = threading.Event()
    grabs = []

    def hold_the_write_lock():
        connection = sqlite3.connect(database, timeout=30, isolation_level=None)
        while not stop.is_set():
            connection.execute("BEGIN IMMEDIATE")
            time.sleep(0.05)
            connection.execute("COMMIT")
            grabs.append(1)
            time.sleep(0.02)
        connection.close()

    competitor = threading.Thread(target=hold_the_write_lock, daemon=True)
    competitor.start()
    try:
        plan, tracker, summary, _ = _run(config)
    finally:
        stop.set()
        competitor.join(timeout=10)
    assert len(grabs) > 20  # the lock really was contended during the run
    assert summary.finished == len(plan.trials) == 12 and not summary.failed
    runs = tracker.trial_runs()
    for trial in plan.trials:
        for metric in ("accuracy", "macro_f1", "query_seconds", "fit_seconds"):
            steps = [m.step for m in tracker.client.get_metric_history(runs[trial.trial_key].run_id, metric)]
            assert sorted(steps) == [6, 12, 18, 24], (trial.trial_key, metric, steps)


def test_an_interrupt_while_writes_are_in_flight_logs_no_step_twice(ray_session, corpus, tmp_path):
    # Ctrl-C can land while the writer thread still applies an earlier flush; stopping must wait
    # for it, then write only what is missing and end the run KILLED after it.
    from orchestrator.checkpoints import CheckpointStore
    from orchestrator.trial_log import CYCLE_METRICS, Recording, TrialLog
    from workers.trajectory import Checkpoint, CycleRecord

    config = parse_config(tiny_config(corpus, tmp_path))
    plan = prepare_plan(config)
    tracker = open_tracker(config.tracking.uri, config.experiment_name)
    recording = Recording(tracker, CheckpointStore(config.store.checkpoints))
    log = TrialLog(plan.trials[0], recording)
    assert log.begin() is None  # a new run, from scratch
    records = [
        CycleRecord(cycle=c, n_labelled=6 * (c + 1), accuracy=0.5 + c / 10, macro_f1=0.4, query_seconds=0.01,
                    fit_seconds=0.02, checkpoint=Checkpoint(c, list(range(6 * (c + 1))), {}),
                    learner={"learner_C": 10.0, "learner_searched": float(c == 0)})
        for c in range(4)
    ]
    log.add(records[:3])
    recording.send([log.flush()])  # in flight on the writer thread
    log.add(records[3:])
    log.interrupt()
    log.add(records[3:])  # streamed again after the interrupt: nothing new to write
    recording.send([w for w in [log.flush()] if w is not None])
    recording.writer.close()
    recording.writer.check()
    for metric in CYCLE_METRICS:
        steps = [m.step for m in tracker.client.get_metric_history(log.run_id, metric)]
        assert sorted(steps) == [6, 12, 18, 24], (metric, steps)
    assert tracker.client.get_run(log.run_id).info.status == "KILLED"
    assert log.checkpoint() == records[-1].checkpoint  # saved after the points it covers