"""The driver's write path: the SQL bulk writer equals MLflow's own API row for row, the writer
keeps each run's order and never writes past a failed write, and a trial costs few calls."""

from __future__ import annotations

import math
import threading
import time

import pytest

from orchestrator.config import parse_config
from orchestrator.grid import prepare_plan
from orchestrator.tracking import open_tracker, trial_params
from orchestrator.tracking.base import RunRef, RunWrite
from orchestrator.tracking.writer import TrackingWriteError, TrackingWriter
from tests.conftest import run_in_process, tiny_config


def _writes(trial, ref: RunRef, saved: list) -> list[list[RunWrite]]:
    """Three flushes of one trial: create with params and points, more points, the end."""
    first = RunWrite(ref, trial, create={"albench.warnings": "w"}, params=trial_params(trial),
                     metrics=[("accuracy", 0.5, 6), ("macro_f1", math.nan, 6), ("query_seconds", math.inf, 6)],
                     timestamp=1000, after=lambda: saved.append(1))
    second = RunWrite(ref, trial, metrics=[("accuracy", 0.25, 12), ("accuracy", 0.75, 12)], tags={"t": "x"},
                      timestamp=2000, after=lambda: saved.append(2))
    last = RunWrite(ref, trial, metrics=[("auc_accuracy", 0.4, 0)], tags={"albench.error": "e"},
                    end="FINISHED", timestamp=3000, after=lambda: saved.append(3))
    return [[first], [second], [last]]


def _seen(tracker, run_id: str) -> dict:
    run = tracker.client.get_run(run_id)
    tags = {k: v for k, v in run.data.tags.items() if k != "mlflow.parentRunId"}
    histories = {m: sorted((x.step, x.timestamp, None if math.isnan(x.value) else x.value)
                           for x in tracker.client.get_metric_history(run_id, m))
                 for m in ("accuracy", "macro_f1", "query_seconds", "auc_accuracy")}
    latest = {k: None if math.isnan(v) else v for k, v in run.data.metrics.items()}
    return {"status": run.info.status, "name": run.info.run_name, "start": run.info.start_time,
            "end": run.info.end_time, "user": run.info.user_id, "lifecycle": run.info.lifecycle_stage,
            "artifact_tail": run.info.artifact_uri.rsplit("/", 2)[1:], "tags": tags,
            "params": run.data.params, "metrics": latest, "histories": histories}


def test_the_sql_bulk_writer_records_what_mlflows_api_records(corpus, tmp_path):
    plan = prepare_plan(parse_config(tiny_config(corpus, tmp_path)))
    trial = plan.trials[0]
    bulk = open_tracker(f"sqlite:///{tmp_path / 'bulk.db'}", "e")
    api = open_tracker(f"sqlite:///{tmp_path / 'api.db'}", "e")
    seen = {}
    assert bulk.bulk
    api.bulk = False  # MLflow's API, call by call, as against a server
    for name, tracker in (("bulk", bulk), ("api", api)):
        ref, saved = RunRef(), []
        for flush in _writes(trial, ref, saved):
            tracker.apply(flush)
        assert saved == [1, 2, 3]
        seen[name] = _seen(tracker, ref.run_id)
        assert seen[name]["artifact_tail"][1] == "artifacts"
        seen[name]["artifact_tail"] = seen[name]["artifact_tail"][1]
    assert seen["bulk"] == seen["api"]
    assert seen["bulk"]["status"] == "FINISHED" and seen["bulk"]["end"] == 3000
    assert seen["bulk"]["metrics"]["accuracy"] == 0.75  # latest: largest (step, timestamp, value)
    assert seen["bulk"]["histories"]["query_seconds"][0][2] == 1.7976931348623157e308  # MLflow's inf


def test_a_retried_bulk_transaction_creates_each_run_once(corpus, tmp_path):
    # SQLite's "database is locked" retries the whole transaction: the run ids it made must
    # only become known once it committed, or the retry would write to a run that is not there.
    import sqlite3

    plan = prepare_plan(parse_config(tiny_config(corpus, tmp_path)))
    tracker = open_tracker(f"sqlite:///{tmp_path / 'locked.db'}", "e")
    trial = plan.trials[0]
    tracker.parent_run(trial.dataset, trial.embedder)  # only the bulk transaction waits
    tracker.client.DELAYS = (0.3, 0.3, 0.3, 0.3)
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # the writer waits MLflow's busy timeout (20 s), then retries
    timer = threading.Timer(21.0, lambda: holder.execute("COMMIT"))
    timer.start()
    ref, started = RunRef(), time.monotonic()
    try:
        tracker.apply([RunWrite(ref, trial, create={}, metrics=[("accuracy", 0.5, 6)], timestamp=1)])
    finally:
        timer.cancel()
        holder.close()
    assert time.monotonic() - started > 20  # it outlived one busy timeout: retried
    assert ref.run_id is not None
    runs = tracker.all_trial_runs()
    assert [r.run_id for r in runs] == [ref.run_id]


class _Recorder:
    """A tracker that records the order of writes per run and fails where told (the writer's
    only collaborator: its ordering is what is tested here, against a real server elsewhere)."""

    concurrency = 4

    def __init__(self, fail_on: set[int] = frozenset()) -> None:
        self.order: dict[int, list[int]] = {}
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def apply(self, writes):
        for write in writes:
            time.sleep(0.002 * (write.timestamp % 3))  # uneven latencies
            if write.timestamp in self.fail_on:
                raise RuntimeError(f"refused {write.timestamp}")
            with self.lock:
                self.order.setdefault(id(write.ref), []).append(write.timestamp)
            if write.after is not None:
                write.after()


def test_the_writer_pool_keeps_the_order_of_each_run():
    recorder = _Recorder()
    writer = TrackingWriter(recorder)
    assert writer.threads == 4
    refs = [RunRef() for _ in range(12)]
    for flush in range(20):
        writer.submit([RunWrite(ref, None, timestamp=flush * 100 + i) for i, ref in enumerate(refs)])
    writer.drain()
    writer.close()
    for i, ref in enumerate(refs):
        assert recorder.order[id(ref)] == [flush * 100 + i for flush in range(20)]


def test_after_a_failed_write_nothing_more_of_that_run_is_written():
    recorder = _Recorder(fail_on={101})  # run 1's second flush
    writer = TrackingWriter(recorder)
    refs = [RunRef() for _ in range(3)]
    for flush in range(3):
        writer.submit([RunWrite(ref, None, timestamp=flush * 100 + i) for i, ref in enumerate(refs)])
    with pytest.raises(TrackingWriteError, match="refused 101"):
        writer.drain()
    with pytest.raises(TrackingWriteError, match="refused 101"):  # and every later submit
        writer.submit([RunWrite(refs[1], None, timestamp=301)])
    writer.close()
    assert recorder.order[id(refs[1])] == [1]  # its checkpoint never passes the gap
    assert recorder.order[id(refs[0])] == [0, 100, 200]  # other runs go on


def _grid_calls(config: dict) -> tuple[int, dict]:
    """(trials, MLflow calls by name) of one grid run."""
    plan, used, summary, _ = run_in_process(config)
    assert summary.finished == len(plan.trials) and not summary.failed
    runs = used.trial_runs()
    assert {r.status for r in runs.values()} == {"FINISHED"} and len(runs) == len(plan.trials)
    for run in runs.values():
        assert run.params["seed"] in {"0", "1", "2"} and "auc_accuracy" in run.metrics
    return len(plan.trials), dict(used.client.counts)


def test_a_trial_costs_a_share_of_one_transaction_on_sqlite(ray_session, corpus, tmp_path):
    trials, counts = _grid_calls(tiny_config(corpus, tmp_path, seeds=[0, 1, 2]))
    assert counts["apply"] <= 4  # one bulk transaction per flush: ~1 s of trials each
    assert not {"get_metric_history", "get_run", "log_batch", "create_run"} & {
        k for k, v in counts.items() if v >= trials}, counts  # nothing per trial, no read-back


def test_a_short_trial_costs_three_calls_against_a_server(ray_session, corpus, tmp_path,
                                                         mlflow_server_postgres):
    config = tiny_config(corpus, tmp_path, seeds=[0, 1, 2], name="calls-per-trial")
    config["tracking"]["uri"] = mlflow_server_postgres.uri
    trials, counts = _grid_calls(config)
    parents = 2  # (dataset, embedder) cells: created once, with search + create + end
    stages = 1  # the embedding stage's own run: create, one batch, end
    assert counts["create_run"] == trials + parents + stages, counts
    # a parent's end follows its trials' (it spans them): one more end per parent and flush at most
    assert trials + parents + stages <= counts["set_terminated"] <= 2 * trials + parents + stages, counts
    # params and the curve in one batch, a second one for a trial that spans two flushes
    assert trials <= counts["log_batch"] - stages <= 2 * trials, counts
    assert (counts["create_run"] + counts["log_batch"] + counts["set_terminated"] - 2 * parents
            - 3 * stages <= 5 * trials)
    assert counts.get("get_metric_history", 0) == 0 and counts.get("get_run", 0) == 0, counts
