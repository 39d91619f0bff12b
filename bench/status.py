"""How long the read paths take on a large grid: ``albench status`` and a rerun with nothing to do.

Builds a grid of short trials (3,000 by default: 1,500 seeds x 2 strategies on a small two-topic
corpus, the corpus of ``bench/tracking.py``), runs it once with ``albench run`` against a fresh
SQLite file, then times, each as its own process, as a user would type them:
  1. the imports alone (the CLI and what ``status`` imports: MLflow's store is most of it), the
     floor of the command;
  2. ``albench status CONFIG``;
  3. ``albench run CONFIG`` again (every trial finished: nothing to embed, nothing to run).
Usage: ``python bench/status.py [--trials 3000] [--repeat 3]`` (best of the repeats printed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))

from bench.tracking import write_dataset


def timed(argv: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="albench-status-"))
    config = {
        "name": "status-bench",
        "datasets": [{"name": "two-topics", "source": write_dataset(folder)}],
        "embedders": [{"name": "tfidf", "model": "tfidf-svd", "dim": 8}],
        "protocol": {"initial_pool_size": 4, "query_size": 4, "cycles": 3},
        "strategies": [{"name": "random"}, {"name": "margin"}],
        "learner": {"C": 1.0},
        "seeds": list(range(args.trials // 2)),
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}"},
        "store": {"path": str(folder / "embeddings"), "checkpoints": str(folder / "checkpoints")},
    }
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    albench = [sys.executable, "-m", "orchestrator.cli"]
    began = time.perf_counter()
    subprocess.run([*albench, "run", str(path)], check=True, stdout=subprocess.DEVNULL, cwd=folder)
    first = time.perf_counter() - began
    imports = timed([sys.executable, "-c", ("import orchestrator.cli, orchestrator.tracking.mlflow_backend, "
                     "orchestrator.checkpoints, orchestrator.report, workers.store, "
                     "mlflow.store.tracking.sqlalchemy_store")], args.repeat)
    status = timed([*albench, "status", str(path)], args.repeat)
    rerun = timed([*albench, "run", str(path)], args.repeat)
    print(f"{args.trials} finished trials in one SQLite file, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}"
          f" (first run {first:.0f} s)")
    print(f"imports alone            {imports:6.2f} s")
    print(f"albench status           {status:6.2f} s   ({status - imports:.2f} s after imports)")
    print(f"albench run (nothing to do) {rerun:6.2f} s")


if __name__ == "__main__":
    main()
