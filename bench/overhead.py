"""What albench costs on top of the AL work itself.

Runs the default grid's trajectories twice, side by side, on the same embeddings:
  1. through albench: Ray actors, streaming cycles, MLflow (a fresh SQLite file), checkpoints;
  2. as a plain Python loop: the same learner and strategies (``run_trajectory``), no Ray, no
     MLflow, one process.
Prints the wall times, their ratio and the overhead per trial in ms. Ray start-up is reported
apart. Usage: ``python bench/overhead.py [experiments.yaml]`` (embeds first if the store is empty).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # a checkout without install, any folder


def main(config_path: str = str(Path(__file__).resolve().parents[1] / "experiments.yaml")) -> None:
    from orchestrator.config import load_config
    from orchestrator.console import Reporter
    from orchestrator.embedding_stage import embedding_stage
    from orchestrator.grid import prepare_plan
    from orchestrator.ray_runtime import init_ray
    from orchestrator.runner import run_grid
    from orchestrator.tracking import open_tracker
    from workers.store import EmbeddingStore
    from workers.trajectory import InitialPoolCache, run_trajectory

    quiet = Reporter.quiet()
    config = load_config(config_path)
    began = time.perf_counter()
    init_ray()
    ray_start = time.perf_counter() - began
    scratch = Path(tempfile.mkdtemp(prefix="albench-overhead-"))
    config = config.model_copy(update={
        "tracking": config.tracking.model_copy(update={"uri": f"sqlite:///{scratch / 'mlflow.db'}"}),
        "store": config.store.model_copy(update={"checkpoints": scratch / "checkpoints"}),
    })
    plan = prepare_plan(config)
    embedded = embedding_stage(plan.jobs, plan.datasets, EmbeddingStore(config.store.path),
                               config.resources, quiet)
    assert not embedded.errors, embedded.errors
    data = embedded.data
    n = len(plan.trials)

    began = time.perf_counter()
    initial_pools = InitialPoolCache()  # reused by sibling trials, as each albench actor does
    for trial in plan.trials:
        for _ in run_trajectory(trial, data[trial.embedding_key], initial_pools=initial_pools):
            pass
    plain = time.perf_counter() - began

    tracker = open_tracker(config.tracking.uri, config.experiment_name)  # migrations outside the timing
    began = time.perf_counter()
    summary = run_grid(plan, tracker, quiet)
    albench = time.perf_counter() - began
    assert summary.finished == n, summary

    import ray

    workers = min(n, int(ray.cluster_resources().get("CPU", 1) // config.resources.cpus_per_trajectory))
    print(f"grid: {config.name}, {n} trials, {config.protocol.n_cycles + 1} points each, "
          f"{workers} trajectory actors on {os.cpu_count()} cores")
    print(f"ray.init (not counted):           {ray_start:8.2f} s")
    print(f"plain loop (1 process, no Ray):   {plain:8.2f} s  ({plain / n * 1000:.1f} ms/trial)")
    print(f"albench (Ray + MLflow + ckpts):   {albench:8.2f} s  ({albench / n * 1000:.1f} ms/trial)")
    print(f"ratio albench / plain (wall):     {albench / plain:8.2f}")
    print(f"overhead per trial, wall:         {(albench - plain) / n * 1000:8.1f} ms")
    print(f"overhead per trial, worker time:  {(albench * workers - plain) / n * 1000:8.1f} ms "
          f"(albench wall x {workers} actors - plain, per trial)")


if __name__ == "__main__":
    main(*sys.argv[1:])
