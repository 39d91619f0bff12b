"""How long ``albench report`` takes on a large grid: 10,000 finished trials of 10 cycles in SQLite.

Builds (untimed) a synthetic grid in a fresh SQLite MLflow store through the tracker's own bulk
write path (``MlflowTracker.apply``, i.e. ``tracking/mlflow_sql.py``): 5 datasets x 4 embedders x
2 initial pools x 10 strategies x 25 seeds, every trial 11 points of every cycle metric, curves
with a built-in strategy effect and seed noise. Then times ``build_report`` on it from a freshly
opened tracker, and prints the seconds and the MLflow calls it made (a bulk query counts one).
Usage: ``python bench/report_scale.py [--seeds 25] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))

STRATEGIES = ("random", "margin", "entropy", "least_confidence", "badge", "coreset", "typiclust", "probcover",
              "dropquery", "alfamix")
EMBEDDERS = {"svd8": 8, "svd16": 16, "svd32": 32, "svd64": 64}


def write_datasets(folder: Path, n: int) -> list[dict]:
    import pandas as pd

    out = []
    for d in range(n):
        words = {"a": f"match goal team player {d}", "b": f"market stock bank price {d}"}
        rows = [{"text": f"{words[label]} {i}", "label": label} for i in range(100) for label in "ab"]
        train, test = folder / f"train{d}.parquet", folder / f"test{d}.parquet"
        pd.DataFrame(rows).to_parquet(train)
        pd.DataFrame(rows[:60]).to_parquet(test)
        out.append({"name": f"data{d}", "source": {"type": "file", "train": str(train), "test": str(test)}})
    return out


def synthetic_grid(folder: Path, seeds: int):
    from orchestrator.config import parse_config
    from orchestrator.grid import prepare_plan
    from orchestrator.results import summarize
    from orchestrator.tracking import open_tracker, trial_params
    from orchestrator.tracking.base import RunRef, RunWrite

    config = parse_config({
        "name": "report-scale",
        "datasets": write_datasets(folder, 5),
        "embedders": [{"name": name, "model": "tfidf-svd", "dim": dim} for name, dim in EMBEDDERS.items()],
        "protocol": {"initial_pool_size": 10, "query_size": 5, "cycles": 10},
        "initial_pools": [{"name": "random"}, {"name": "typiclust"}],
        "strategies": [{"name": s} for s in STRATEGIES],
        "seeds": list(range(seeds)),
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}"},
        "store": {"path": str(folder / "embeddings"), "checkpoints": str(folder / "checkpoints")},
        "report": {"embedder_quality": {name: 50 + dim / 4 for name, dim in EMBEDDERS.items()}},
    })
    plan = prepare_plan(config, writing=False)
    tracker = open_tracker(config.tracking.uri, config.experiment_name)
    rng = np.random.default_rng(0)
    effect = {s: 0.004 * i - 0.01 for i, s in enumerate(STRATEGIES)}
    steps = [config.protocol.initial_pool_size + c * config.protocol.query_size
             for c in range(config.protocol.n_cycles + 1)]
    progress = np.linspace(0, 1, len(steps))
    writes = []
    for trial in plan.trials:
        level = 0.6 + 0.05 * int(trial.dataset[-1]) + EMBEDDERS[trial.embedder] / 640
        pool = 0.01 if trial.initial_pool.name == "typiclust" else 0.0
        curve = np.clip(level - 0.2 * (1 - progress) ** 2 + effect[trial.strategy.name] * progress
                        + pool * (1 - progress) + rng.normal(0, 0.01, len(steps)), 0, 1)
        points = {"accuracy": curve, "macro_f1": curve - 0.02, "query_seconds": rng.uniform(0.001, 0.05, len(steps)),
                  "fit_seconds": rng.uniform(0.001, 0.01, len(steps)), "predicted_classes": np.full(len(steps), 2.0)}
        metrics = [(name, float(v), step) for name, values in points.items() for step, v in zip(steps, values)]
        summary = summarize({name: list(zip(steps, values.tolist())) for name, values in points.items()})
        metrics += [(k, v, 0) for k, v in summary.items()]
        writes.append(RunWrite(RunRef(), trial, create={}, params=trial_params(trial), metrics=metrics,
                               end="FINISHED", timestamp=int(time.time() * 1000)))
        if len(writes) == 500:
            tracker.apply(writes)
            writes = []
    tracker.apply(writes)
    return config, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=25, help="seeds per cell (25: 10,000 trials)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: a temporary one)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="albench-report-scale-"))
    began = time.perf_counter()
    config, plan = synthetic_grid(folder, args.seeds)
    made = time.perf_counter() - began
    import matplotlib  # noqa: F401 - imported before the clock: a fixed cost of any report
    import plotly.graph_objects  # noqa: F401

    from orchestrator.report.build import build_report
    from orchestrator.tracking import open_tracker

    tracker = open_tracker(config.tracking.uri, config.experiment_name, create=False)
    calls = tracker.calls
    began = time.perf_counter()
    out = build_report(config, tracker, plan, args.out or folder / "report")
    seconds = time.perf_counter() - began
    size = (out / "index.html").stat().st_size / 2**20
    print(f"{len(plan.trials)} finished trials x {config.protocol.n_cycles} cycles in one SQLite file, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d')} (store built in "
          f"{made:.0f} s, not timed)")
    print(f"build_report  {seconds:6.1f} s   MLflow calls {tracker.calls - calls}   index.html {size:.1f} MiB")
    import json

    parts = json.loads((out / "stats.json").read_text())["seconds"]
    print("seconds by part: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    print(f"report: {out}")


if __name__ == "__main__":
    main()
