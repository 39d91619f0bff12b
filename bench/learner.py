"""Does the default learner decide the result? It against a hindsight oracle and the old C = 1.

    python bench/learner.py [CONFIG] [--seeds 5] [--store DIR] [--cost-seeds N]

For every (dataset, embedder) of CONFIG (default: the default grid), at budgets from the
initial pool to 10x it, on random labelled rows (5 seeds), test accuracy and macro-F1 of:
  - ``default``: the default learner (``LogisticRegressionSpec()``: C chosen per cycle by
    cross-validation on the labelled rows);
  - ``C=1``: the learner of albench before (fixed C = 1 on the raw L2-normalised embeddings);
  - ``oracle``: for each (dataset, embedder, budget) the single fixed C that is best on the
    test split over the seeds (chosen with hindsight: a diagnosis, never a learner), on the
    default's features.
Prints the mean and worst gap to the oracle per budget, and the cells where a learner predicts
one class for every test row while the oracle does not. Then the cost: the trajectories of the
default grid (``--cost-seeds`` of its seeds) with the default learner and with C = 1, side by side
in one process, and their ratio. Embeddings come from the store (``--store``, default the
config's); missing entries are embedded first (Ray).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # a checkout without install works too, from any folder

ORACLE_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


def arrays(config, store_path):
    """(dataset, embedder) -> TrialData, from the store (embedding what is missing)."""
    from orchestrator.console import Reporter
    from orchestrator.embedding_stage import embedding_stage
    from orchestrator.grid import prepare_plan
    from orchestrator.ray_runtime import init_ray
    from workers.store import EmbeddingStore

    plan = prepare_plan(config, writing=False)
    store = EmbeddingStore(store_path)
    if not all(store.has(j.dataset_name, j.embedder.name, j.key) for j in plan.jobs):
        init_ray()
    embedded = embedding_stage(plan.jobs, plan.datasets, store, config.resources, Reporter.quiet())
    return plan, {(j.dataset_name, j.embedder.name): embedded.data[j.key] for j in plan.jobs}


def evaluate(head, data) -> tuple[float, float, int]:
    from workers.metrics import accuracy, macro_f1

    predicted = head.logits(data.test_x).argmax(axis=1)
    n_classes = int(max(data.train_y.max(), data.test_y.max())) + 1
    return (accuracy(data.test_y, predicted), macro_f1(data.test_y, predicted, n_classes),
            int(np.unique(predicted).size))


def quality(plan, data_by_cell, seeds: int) -> None:
    from workers.learners import make_learner
    from workers.specs import LogisticRegressionSpec

    start = plan.config.protocol.initial_pool_size
    budgets = sorted({start, 2 * start, 4 * start, 7 * start, 10 * start})
    default, old = LogisticRegressionSpec(), LogisticRegressionSpec(C=1.0)
    fixed = {c: LogisticRegressionSpec(C=c, standardize=default.standardize) for c in ORACLE_GRID}
    gaps: dict[int, dict[str, list[float]]] = {b: {"default": [], "C=1": []} for b in budgets}
    f1_gaps: dict[int, dict[str, list[float]]] = {b: {"default": [], "C=1": []} for b in budgets}
    stuck: dict[str, list[str]] = {"default": [], "C=1": []}
    began = time.perf_counter()
    print(f"{'dataset / embedder':34s} {'budget':>6s}  {'default':>15s} {'C=1':>15s} {'oracle':>15s}  "
          "oracle C   (accuracy / macro-F1, mean over seeds)")
    for (dataset, embedder), data in data_by_cell.items():
        n_classes = int(max(data.train_y.max(), data.test_y.max())) + 1
        for budget in budgets:
            scores = {"default": [], "C=1": [], **{c: [] for c in ORACLE_GRID}}
            for seed in range(seeds):
                order = np.random.default_rng(seed).permutation(data.train_y.size)
                rows = order[:budget]
                for name, spec in (("default", default), ("C=1", old), *fixed.items()):
                    learner = make_learner(spec, n_classes, data.train_x, seed)
                    if name == "default":  # as in a trajectory: one fit per cycle on the way
                        for size in range(start, budget, start):
                            learner.fit(data.train_x[np.sort(order[:size])], data.train_y[np.sort(order[:size])])
                    scores[name].append(evaluate(learner.fit(data.train_x[np.sort(rows)],
                                                             data.train_y[np.sort(rows)]), data))
            mean = {k: np.mean([s[:2] for s in v], axis=0) for k, v in scores.items()}
            best_c = max(ORACLE_GRID, key=lambda c: mean[c][0])
            oracle = mean[best_c]
            oracle_classes = min(s[2] for s in scores[best_c])
            for name in ("default", "C=1"):
                gaps[budget][name].append(oracle[0] - mean[name][0])
                f1_gaps[budget][name].append(oracle[1] - mean[name][1])
                if oracle_classes > 1 and any(s[2] == 1 for s in scores[name]):
                    stuck[name].append(f"{dataset} / {embedder} at {budget}")
            shown = "  ".join(f"{mean[k][0]:.3f} / {mean[k][1]:.3f}" for k in ("default", "C=1"))
            print(f"{dataset + ' / ' + embedder:34s} {budget:6d}  {shown}  {oracle[0]:.3f} / {oracle[1]:.3f}  "
                  f"{best_c:g}", flush=True)
    print(f"\n({time.perf_counter() - began:.0f} s) gap to the oracle, accuracy points (macro-F1 points), "
          "mean and worst over (dataset, embedder):")
    for budget in budgets:
        cells = "   ".join(
            f"{name}: mean {100 * np.mean(gaps[budget][name]):5.2f} ({100 * np.mean(f1_gaps[budget][name]):5.2f}), "
            f"worst {100 * np.max(gaps[budget][name]):5.2f}" for name in ("default", "C=1"))
        print(f"  budget {budget:4d}   {cells}")
    for name, cells in stuck.items():
        print(f"one class predicted for every test row where the oracle predicts several, {name}: "
              f"{len(cells)} cells" + (f" ({'; '.join(cells[:6])})" if cells else ""))


def cost(plan, data_by_cell, cost_seeds: int) -> None:
    from workers.specs import LogisticRegressionSpec
    from workers.trajectory import InitialPoolCache, run_trajectory

    trials = [t for t in plan.trials if t.seed in plan.config.seeds[:cost_seeds]]
    timings = {}
    for name, spec in (("C=1", LogisticRegressionSpec(C=1.0)), ("default", LogisticRegressionSpec())):
        began = time.perf_counter()
        pools = InitialPoolCache()
        for trial in trials:
            trial = trial.model_copy(update={"learner": spec})
            for _ in run_trajectory(trial, data_by_cell[(trial.dataset, trial.embedder)], initial_pools=pools):
                pass
        timings[name] = time.perf_counter() - began
    print(f"\ncost: {len(trials)} trajectories of the default grid ({plan.config.protocol.n_cycles + 1} fits "
          f"each), one process, side by side")
    for name, seconds in timings.items():
        print(f"  {name:8s} {seconds:7.1f} s  ({seconds / len(trials) * 1000:.0f} ms a trajectory)")
    print(f"  ratio default / C=1: {timings['default'] / timings['C=1']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "experiments.yaml"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--store", help="the embedding store (default: the config's store.path)")
    parser.add_argument("--cost-seeds", type=int, default=3, help="seeds of the grid in the cost run")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from orchestrator.config import load_config

    warnings.simplefilter("ignore")
    config = load_config(args.config)
    plan, data = arrays(config, args.store or config.store.path)
    with threadpool_limits(limits=1):  # as inside a trajectory
        quality(plan, data, args.seeds)
        if not args.skip_cost:
            cost(plan, data, args.cost_seeds)


if __name__ == "__main__":
    main()
