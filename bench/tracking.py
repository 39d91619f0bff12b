"""How fast the driver records trials: 2,000 short trials, side by side, on the same actors.

  1. baseline: the trials alone: the same trajectory actors driven by a bare Ray loop that
     throws the cycles away (what the workers can deliver);
  2. albench against SQLite (a fresh file): the driver's whole path (runs, metrics, summaries,
     checkpoints, progress, the parent runs' figures) with its one writer thread; then again
     without the parent runs' figures, to show what they cost;
  3. albench against a real ``mlflow server`` on 127.0.0.1 (SQLite behind it; PostgreSQL behind
     it with ``--postgres``), with the writer pool;
  4. the server's ceiling: the same server fed by a minimal client (``requests``, 3 REST calls a
     trial: create, one batch, end; 8 threads, no albench, no Ray), what any driver could get.
For each: trials/s, its ratio to the baseline, the driver's CPU ms per trial (the driver process,
writer threads included; the server's own CPU is apart), the MLflow calls per trial (a bulk
transaction counts one) and the 1-core ceiling (1000 / driver ms: what the driver could record,
its threads sharing one core under the GIL, were the server not the limit).
Usage: ``python bench/tracking.py [--trials 2000] [--postgres]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # a checkout without install, any folder


def write_dataset(folder: Path) -> dict:
    """A small two-topic corpus: trials of 3 cycles that take a few ms each."""
    import pandas as pd

    words = {"a": "match goal team player score coach", "b": "market stock bank price profit trade"}
    rows = [{"text": f"{words[label]} {i}", "label": label} for i in range(200) for label in "ab"]
    pd.DataFrame(rows).to_parquet(folder / "train.parquet")
    pd.DataFrame(rows[:100]).to_parquet(folder / "test.parquet")
    return {"type": "file", "train": str(folder / "train.parquet"), "test": str(folder / "test.parquet")}


def config_for(folder: Path, source: dict, trials: int, uri: str, name: str):
    from orchestrator.config import parse_config

    return parse_config({
        "name": name,
        "datasets": [{"name": "two-topics", "source": source}],
        "embedders": [{"name": "tfidf", "model": "tfidf-svd", "dim": 8}],
        "protocol": {"initial_pool_size": 4, "query_size": 4, "cycles": 3},
        "strategies": [{"name": "random"}, {"name": "margin"}],
        "learner": {"C": 1.0},
        "seeds": list(range(trials // 2)),
        "tracking": {"uri": uri},
        "store": {"path": str(folder / "embeddings"), "checkpoints": str(folder / f"checkpoints-{name}")},
    })


def baseline(plan, data, actors: int) -> float:
    """Seconds for the bare loop: the same actors, every cycle fetched and dropped."""
    import ray

    from workers.actors import TrajectoryWorker

    worker = ray.remote(TrajectoryWorker).options(num_cpus=1)
    pool = [worker.remote() for _ in range(actors)]
    ray.get([a.pid.remote() for a in pool])
    refs = {k: ray.put(v) for k, v in data.items()}
    todo = list(plan.trials)
    began = time.perf_counter()
    running, idle = {}, list(pool)
    while todo or running:
        while todo and idle:
            trial = todo.pop()
            actor = idle.pop()
            running[actor.run.remote(trial, refs[trial.embedding_key], None)] = actor
        ready, _ = ray.wait(list(running), num_returns=1)
        for generator in ready:
            try:
                ray.get(next(generator))
            except StopIteration:
                idle.append(running.pop(generator))
    seconds = time.perf_counter() - began
    for actor in pool:
        ray.kill(actor)
    return seconds


FIGURES: list = []
"""The parent-figure keepers of the runs so far (their renders and CPU seconds are printed)."""


def albench(config, figures: bool = True) -> tuple[float, float, int, int]:
    """(seconds, driver CPU seconds, MLflow calls, trials finished) of ``run_grid``;
    ``figures=False``: without the parent runs' figures (``orchestrator/report/cell_figures.py``),
    to measure what they cost."""
    from orchestrator import runner
    from orchestrator.console import Reporter
    from orchestrator.grid import prepare_plan
    from orchestrator.report.cell_figures import CellFigures
    from orchestrator.tracking import open_tracker

    class Counted(CellFigures):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            FIGURES.append(self)

    class Off(CellFigures):
        def add(self, trial, points):
            pass

    runner.CellFigures = Counted if figures else Off
    plan = prepare_plan(config)
    tracker = open_tracker(config.tracking.uri, config.experiment_name)  # schema made outside the timing
    calls = tracker.calls
    began, cpu = time.perf_counter(), time.process_time()
    summary = runner.run_grid(plan, tracker, Reporter.quiet())
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    assert not summary.failed, summary.failed[:3]
    return seconds, cpu, tracker.calls - calls, summary.finished


def server_ceiling(uri: str, plan, trials: int, threads: int = 8) -> tuple[float, float, int, int]:
    """(seconds, client CPU seconds, calls, trials) of ``trials`` minimal trials against ``uri``
    carrying what an albench trial of ``plan`` carries (its params, its tags, every cycle metric
    and the summaries): the floor of what recording a trial costs the server, with nothing of
    albench around it."""
    from orchestrator.tracking.base import trial_params
    from orchestrator.trial_log import CYCLE_METRICS

    params = [{"key": k, "value": v} for k, v in trial_params(plan.trials[0]).items()]
    tags = [{"key": f"tag{j}", "value": "v"} for j in range(8)]  # key, parent, name, keys, node
    steps = [6 * (c + 1) for c in range(plan.trials[0].protocol.n_cycles + 1)]
    summaries = ("auc_accuracy", "auc_macro_f1", "final_accuracy", "final_macro_f1",
                 "total_query_seconds", "single_class_cycles")
    import json
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    local = threading.local()

    def post(path: str, body: dict) -> dict:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        answer = local.session.post(f"{uri}/api/2.0/mlflow/{path}", data=json.dumps(body),
                                    headers={"Content-Type": "application/json"}, timeout=60)
        answer.raise_for_status()
        return answer.json()

    experiment = post("experiments/create", {"name": f"ceiling-{time.time_ns()}"})["experiment_id"]

    def trial(index: int) -> None:
        now = int(time.time() * 1000)
        run = post("runs/create", {"experiment_id": experiment, "start_time": now,
                                   "tags": [{"key": "albench.trial_key", "value": f"t{index}"}, *tags]})
        run_id = run["run"]["info"]["run_id"]
        points = [{"key": m, "value": 0.5, "timestamp": now, "step": step}
                  for m in CYCLE_METRICS for step in steps]
        points += [{"key": m, "value": 0.5, "timestamp": now, "step": 0} for m in summaries]
        post("runs/log-batch", {"run_id": run_id, "metrics": points, "params": params})
        post("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": now})

    began, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(trial, range(trials)))
    return time.perf_counter() - began, time.process_time() - cpu, 3 * trials, trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--postgres", action="store_true", help="also a server on PostgreSQL")
    parser.add_argument("--no-server", action="store_true", help="SQLite only")
    args = parser.parse_args()

    import ray

    from orchestrator.console import Reporter
    from orchestrator.embedding_stage import embedding_stage
    from orchestrator.grid import prepare_plan
    from orchestrator.ray_runtime import init_ray
    from tests.servers import mlflow_server, postgres_cluster
    from workers.store import EmbeddingStore

    folder = Path(tempfile.mkdtemp(prefix="albench-tracking-"))
    source = write_dataset(folder)
    init_ray()
    actors = int(ray.cluster_resources().get("CPU", 1))
    first = config_for(folder, source, args.trials, f"sqlite:///{folder / 'sqlite.db'}", "sqlite")
    plan = prepare_plan(first)
    embedded = embedding_stage(plan.jobs, plan.datasets, EmbeddingStore(first.store.path),
                               first.resources, Reporter.quiet())
    n = len(plan.trials)
    rows = []
    base = baseline(plan, embedded.data, actors)
    rows.append(("trials alone (bare Ray loop)", base, None, None, n))
    rows.append(("albench, SQLite file", *albench(first)))
    bare = config_for(folder, source, args.trials, f"sqlite:///{folder / 'bare.db'}", "bare")
    rows.append(("albench, SQLite file, no parent figures", *albench(bare, figures=False)))
    servers = [] if args.no_server else [("sqlite", None)] + ([("postgres", None)] if args.postgres else [])
    for kind, _ in servers:
        with postgres_cluster() if kind == "postgres" else contextlib.nullcontext() as cluster:
            backend = cluster.database("mlflow") if kind == "postgres" else f"sqlite:///{folder / 'server.db'}"
            # without MLflow's GenAI job execution, as docker/compose.yaml runs it: its 8 job
            # consumers take 16 CPU-seconds of these 2 cores right after the server answers
            with mlflow_server(backend, folder / f"server-{kind}", extra_args=("--workers", "2"),
                               env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}) as server:
                config = config_for(folder, source, args.trials, server.uri, f"server-{kind}")
                rows.append((f"albench, mlflow server ({kind} behind it)", *albench(config)))
                rows.append((f"  the server alone, minimal client ({kind})",
                             *server_ceiling(server.uri, plan, max(n // 4, 100))))

    print(f"{n} trials of {first.protocol.n_cycles} cycles, {actors} trajectory actors, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print(f"{'':44} {'trials/s':>9} {'x base':>7} {'driver ms/trial':>16} {'calls/trial':>12} "
          f"{'1-core ceiling':>15}")
    for name, seconds, cpu, calls, finished in rows:
        rate = finished / seconds
        ratio = rate / (n / base)
        print(f"{name:44} {rate:9.1f} {ratio:7.2f} "
              f"{'' if cpu is None else f'{cpu / finished * 1000:16.1f}':>16} "
              f"{'' if calls is None else f'{calls / finished:12.2f}':>12} "
              f"{'' if not cpu else f'{finished / cpu:15.0f}':>15}")
    print("1-core ceiling: trials/s the driver (or client) could record on one core of this "
          "machine at its CPU cost per trial, with a server that keeps up")
    drawn = sum(f.rendered for f in FIGURES)
    print(f"parent figures: {drawn} drawn, {sum(f.cpu_seconds for f in FIGURES) / max(drawn, 1) * 1000:.0f} ms "
          "of CPU each (figure thread: read, draw, upload)")


if __name__ == "__main__":
    main()
