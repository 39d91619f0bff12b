"""Does the default learner decide the result? It against a hindsight oracle, and what it costs.

    python bench/learner.py [CONFIG] [--seeds 5] [--store DIR] [--spec JSON] [--before COMMIT]
                            [--cost-seeds N] [--skip-cost] [--shapes] [--skip-quality]

Quality. For every (dataset, embedder) of CONFIG (default: bench/learner.yaml: the default grid's
tasks plus three noisy or many-class ones), along a trajectory of random labels (``--seeds``
seeds; initial pool, then one query of the protocol per cycle, up to 10x the initial pool), test
accuracy and macro-F1 at every budget of:
  - ``default``: the default learner (``LogisticRegressionSpec()``, or it updated by ``--spec``),
    refitted every cycle as in a trajectory (its searches as scheduled);
  - ``oracle``: for each (dataset, embedder, budget) the single fixed C of ``ORACLE_GRID`` that is
    best on the test split over the seeds (chosen with hindsight: a diagnosis, never a learner);
  - ``majority``: the test split's majority-class rate.
Prints, per cell, the default's accuracy and the oracle's at a few budgets and the distribution of
the C the default chose; then the gap to the oracle (mean over budgets and cells, worst cell) and
the cells where the default ends below the majority rate while the oracle is above it.

Cost (unless ``--skip-cost``): trajectories of CONFIG's trials (``--cost-seeds`` seeds, random
sampling) with the default learner, with ``C: 1.0`` and, with ``--before COMMIT``, with the
default learner of that commit, side by side in one process. ``--shapes``: the same at the study's
shapes (synthetic Gaussian-mixture vectors: pool 20,000, test 5,000, 4,096 dimensions, 77 classes,
initial pool 20, 20 cycles of 20, one thread), the learner's share of a trajectory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
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


def evaluate(head, data, n_classes: int) -> tuple[float, float]:
    from workers.metrics import accuracy, macro_f1

    predicted = head.logits(data.test_x).argmax(axis=1)
    return accuracy(data.test_y, predicted), macro_f1(data.test_y, predicted, n_classes)


def quality(plan, data_by_cell, seeds: int, spec) -> None:
    from workers.learners import make_learner
    from workers.specs import LogisticRegressionSpec

    protocol = plan.config.protocol
    start, step = protocol.initial_pool_size, protocol.query_size
    budgets = list(range(start, 10 * start + 1, step))
    shown = [b for b in budgets if b in (start, 2 * start, 4 * start, budgets[-1])]
    fixed = {c: LogisticRegressionSpec(C=c, standardize=spec.standardize) for c in ORACLE_GRID}
    gaps, f1_gaps, below, worst = [], [], [], {}
    began = time.perf_counter()
    print(f"{'dataset / embedder':34s} {'majority':>8s}  " + "  ".join(f"{'@' + str(b):>13s}" for b in shown)
          + "   default (oracle) accuracy; C chosen by the default (count over seeds x budgets)")
    for (dataset, embedder), data in data_by_cell.items():
        n_classes = int(max(data.train_y.max(), data.test_y.max())) + 1
        majority = float(np.bincount(data.test_y).max() / data.test_y.size)
        scores = {name: np.zeros((seeds, len(budgets), 2)) for name in ("default", *ORACLE_GRID)}
        chosen: Counter = Counter()
        for seed in range(seeds):
            order = np.random.default_rng(seed).permutation(data.train_y.size)
            learner = make_learner(spec, n_classes, data.train_x, seed)
            for b, budget in enumerate(budgets):
                rows = np.sort(order[:budget])
                scores["default"][seed, b] = evaluate(learner.fit(data.train_x[rows], data.train_y[rows]), data, n_classes)
                chosen[learner.fit_info().get("learner_C")] += 1
                for c, fixed_spec in fixed.items():
                    head = make_learner(fixed_spec, n_classes, data.train_x, seed).fit(data.train_x[rows], data.train_y[rows])
                    scores[c][seed, b] = evaluate(head, data, n_classes)
        mean = {k: v.mean(axis=0) for k, v in scores.items()}  # budgets x (accuracy, macro-F1)
        oracle = np.max([mean[c] for c in ORACLE_GRID], axis=0)  # best fixed C per budget and metric
        gap, f1_gap = oracle[:, 0] - mean["default"][:, 0], oracle[:, 1] - mean["default"][:, 1]
        gaps.append(gap)
        f1_gaps.append(f1_gap)
        worst[(dataset, embedder)] = gap.mean()
        low = [b for i, b in enumerate(budgets) if mean["default"][i, 0] < majority <= oracle[i, 0]]
        if low:
            below.append(f"{dataset} / {embedder} at {low}")
        cells = "  ".join(f"{mean['default'][budgets.index(b), 0]:.3f} ({oracle[budgets.index(b), 0]:.3f})" for b in shown)
        cs = ", ".join(f"{c:g}: {n}" for c, n in sorted(chosen.items(), key=lambda kv: -1 if kv[0] is None else kv[0]))
        print(f"{dataset + ' / ' + embedder:34s} {majority:8.3f}  {cells}   {cs}", flush=True)
    gaps, f1_gaps = 100 * np.array(gaps), 100 * np.array(f1_gaps)
    cell, value = max(worst.items(), key=lambda kv: kv[1])
    print(f"\n({time.perf_counter() - began:.0f} s) default against the oracle, accuracy points "
          f"(macro-F1 points), over {len(worst)} (dataset, embedder) x {len(budgets)} budgets x {seeds} seeds:")
    print(f"  mean gap {gaps.mean():.2f} ({f1_gaps.mean():.2f}); worst (dataset, embedder), mean over budgets: "
          f"{100 * value:.2f} ({cell[0]} / {cell[1]}); worst single budget {gaps.max():.2f}")
    print("  mean gap per budget: " + ", ".join(f"{b}: {g:.2f}" for b, g in zip(budgets, gaps.mean(axis=0), strict=True)))
    print(f"  below the majority rate where the oracle is above it: {len(below)} cells"
          + (f" ({'; '.join(below)})" if below else ""))


def learner_of(commit: str):
    """The ``LogisticRegressionLearner`` class as it was at ``commit`` (loaded from git)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:workers/learners/logistic.py"],
                            check=True, capture_output=True, text=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="albench-before-"))
    (folder / "logistic_before.py").write_text(source.replace('kind = "logistic_regression"', 'kind = ""'))
    module_spec = importlib.util.spec_from_file_location("logistic_before", folder / "logistic_before.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.LogisticRegressionLearner


def timed_trajectories(trials, data_of, learners: dict) -> dict[str, tuple[float, float]]:
    """(total seconds, learner seconds) per learner name, the same trials run for each."""
    from workers import trajectory
    from workers.trajectory import InitialPoolCache, run_trajectory

    timings = {}
    for name, (spec, cls) in learners.items():
        original = trajectory.make_learner
        if cls is not None:
            trajectory.make_learner = lambda s, k, pool, seed, cls=cls: cls(s, k, pool, seed)
        try:
            began, fitting = time.perf_counter(), 0.0
            pools = InitialPoolCache()
            for trial in trials:
                for record in run_trajectory(trial.model_copy(update={"learner": spec}), data_of(trial), initial_pools=pools):
                    fitting += record.fit_seconds
            timings[name] = (time.perf_counter() - began, fitting)
        finally:
            trajectory.make_learner = original
    return timings


def print_cost(title: str, n: int, timings: dict) -> None:
    print(f"\ncost: {title}, {n} trajectories, one process, side by side")
    base = timings["C=1"][0]
    for name, (total, fitting) in timings.items():
        print(f"  {name:10s} {total:8.1f} s  ({total / n:7.2f} s a trajectory, learner {fitting / n:6.2f} s "
              f"= {100 * fitting / total:3.0f} %)  x{total / base:.2f} of C=1")


def learners(spec, before: str | None) -> dict:
    from workers.specs import LogisticRegressionSpec

    chosen = {"C=1": (LogisticRegressionSpec(C=1.0), None), "default": (spec, None)}
    if before:
        chosen[f"@{before[:7]}"] = (LogisticRegressionSpec(), learner_of(before))
    return chosen


def cost(plan, data_by_cell, cost_seeds: int, spec, before: str | None) -> None:
    trials = [t for t in plan.trials if t.seed in plan.config.seeds[:cost_seeds]]
    timings = timed_trajectories(trials, lambda t: data_by_cell[(t.dataset, t.embedder)], learners(spec, before))
    print_cost(f"the trials of {plan.config.name} ({plan.config.protocol.n_cycles + 1} fits each)", len(trials), timings)


STUDY_SHAPES = {"pool": 20_000, "test": 5_000, "dims": 4096, "classes": 77}
"""The study's shapes (``examples/nfl-2025.yaml``: pools of up to 20k, NV-Embed-class dims)."""


def gaussian_mixture(pool: int, test: int, dims: int, classes: int, seed: int = 0):
    """TrialData of unit-norm rows from a Gaussian mixture whose classes are about as separable
    as a strong embedder's (a few tens of % accuracy at 20 labels with 77 classes), float32."""
    from workers.trajectory import TrialData

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dims)).astype(np.float32) * 0.08 * np.sqrt(4096 / dims)  # |centre| ~ 5
    weights = rng.dirichlet(np.full(classes, 2.0))
    y = rng.choice(classes, pool + test, p=weights)
    x = centres[y] + rng.normal(size=(pool + test, dims)).astype(np.float32) / np.sqrt(dims)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float32)  # as the store's (the values of the float64 draw above)
    return TrialData(x[:pool], y[:pool], x[pool:], y[pool:])


def synthetic_trial(classes: int, strategy: str = "random", cycles: int = 20, seed: int = 0, size: int = 20,
                    params: dict | None = None):
    """A TrialSpec on synthetic data: initial pool of ``size`` random rows, ``cycles`` queries
    of ``size`` rows by ``strategy`` (with ``params``), the default learner."""
    from workers.specs import LogisticRegressionSpec, ProtocolSpec, StrategySpec, TrialSpec

    return TrialSpec(dataset="synthetic", dataset_fingerprint="0" * 16, embedder="synthetic", embedding_key="s",
                     n_classes=classes, initial_pool=StrategySpec(name="random"), strategy=StrategySpec(name=strategy, params=params or {}),
                     learner=LogisticRegressionSpec(), seed=seed,
                     protocol=ProtocolSpec(initial_pool_size=size, query_size=size, cycles=cycles))


def study_shapes(spec, before: str | None, seeds: int = 1) -> None:
    """Random sampling trajectories at the study's shapes on ``gaussian_mixture``."""
    shapes = STUDY_SHAPES
    data = gaussian_mixture(**shapes)
    trials = [synthetic_trial(shapes["classes"], seed=seed) for seed in range(seeds)]
    timings = timed_trajectories(trials, lambda t: data, learners(spec, before))
    print_cost(f"the study's shapes (pool {shapes['pool']}, {shapes['dims']} dims, {shapes['classes']} classes, "
               "21 fits)", len(trials), timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "bench" / "learner.yaml"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--store", help="the embedding store (default: the config's store.path)")
    parser.add_argument("--spec", default="{}", help="JSON fields updating the default learner's spec")
    parser.add_argument("--before", help="a commit whose default learner is timed beside today's")
    parser.add_argument("--cost-seeds", type=int, default=3, help="seeds of the grid in the cost run")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--shapes", action="store_true", help="also time trajectories at the study's shapes")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from orchestrator.config import load_config
    from workers.specs import LogisticRegressionSpec

    warnings.simplefilter("ignore")
    spec = LogisticRegressionSpec(**json.loads(args.spec))
    print(f"default learner: {spec.model_dump()}")
    config = load_config(args.config)
    plan, data = arrays(config, args.store or config.store.path)
    with threadpool_limits(limits=1):  # as inside a trajectory
        if not args.skip_quality:
            quality(plan, data, args.seeds, spec)
        if not args.skip_cost:
            cost(plan, data, args.cost_seeds, spec, args.before)
        if args.shapes:
            study_shapes(spec, args.before)


if __name__ == "__main__":
    main()
