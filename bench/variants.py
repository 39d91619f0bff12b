"""An opt-in variant of a strategy against the strategy's default on real embeddings: how often
the variant picks the same rows, how far its learning curves lie, and its query time.

    python bench/variants.py --strategy typiclust --variant '{"clustering": "subspace"}'
    python bench/variants.py --strategy probcover --variant '{"radius": "per_pool"}' --cycles 10

Per entry of the embedding store (``--store``, every entry whose name contains ``--only``) and
seed: the default's trajectory (``run_trajectory``: 20 random rows, ``--cycles`` queries of 20,
the default learner), where at every cycle the variant and the default with another seed also
select on the same context (their picks unused): the share of the default's picks the variant
picks too, beside the share the default picks again with another seed (the yardstick: how much
the default's own randomness moves its picks); then the variant's own trajectory. Printed: those
shares, the mean absolute gap between the two accuracy curves (over cycles and seeds) beside the
gap between the default's curves of two seeds, the final accuracies, and the query seconds of
both in the same process (a ratio).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))

from bench.learner import synthetic_trial
from bench.trajectory import store_entries, threads


class Beside:
    """The default strategy; at every query the variant (a copy of the same rng) and the
    default with another seed also select on the same context, timed, their picks unused."""

    def __init__(self, default, variant) -> None:
        self.default, self.variant = default, variant
        self.needs, self.cold_start = default.needs, default.cold_start
        self.same_variant, self.same_seed, self.seconds = [], [], {"default": 0.0, "variant": 0.0}

    def select(self, context, n, rng):
        began = time.perf_counter()
        theirs = self.variant.select(context, n, copy.deepcopy(rng))
        self.seconds["variant"] += time.perf_counter() - began
        reseeded = np.random.default_rng(int(copy.deepcopy(rng).integers(2**62)) + 1)
        again = self.default.select(context, n, reseeded)
        began = time.perf_counter()
        chosen = self.default.select(context, n, rng)
        self.seconds["default"] += time.perf_counter() - began
        self.same_variant.append(np.intersect1d(chosen, theirs).size / n)
        self.same_seed.append(np.intersect1d(chosen, again).size / n)
        return chosen


def trajectory(trial, data, beside=None) -> np.ndarray:
    """(cycles + 1,) test accuracies of one trajectory; ``beside`` wraps its strategy."""
    from workers import trajectory as module

    original = module.build_strategy
    if beside is not None:
        module.build_strategy = lambda spec, initial_pool=False: original(spec) if initial_pool else beside
    try:
        return np.array([record.accuracy for record in module.run_trajectory(trial, data)])
    finally:
        module.build_strategy = original


def compare(data, name: str, variant: dict, seeds: int, cycles: int) -> dict:
    from strategies import QUERY_STRATEGIES
    from workers.specs import StrategySpec

    n_classes = int(max(data.train_y.max(), data.test_y.max())) + 1
    default_curves, variant_curves, same_variant, same_seed = [], [], [], []
    seconds = {"default": 0.0, "variant": 0.0}
    for seed in range(seeds):
        trial = synthetic_trial(n_classes, name, cycles, seed=seed)
        beside = Beside(QUERY_STRATEGIES.create(name, {}), QUERY_STRATEGIES.create(name, variant))
        default_curves.append(trajectory(trial, data, beside))
        same_variant += beside.same_variant
        same_seed += beside.same_seed
        for key in seconds:
            seconds[key] += beside.seconds[key]
        variant_curves.append(trajectory(trial.model_copy(update={"strategy": StrategySpec(name=name, params=variant)}), data))
    default_curves, variant_curves = np.array(default_curves), np.array(variant_curves)
    return {
        "same_variant": float(np.mean(same_variant)), "same_seed": float(np.mean(same_seed)),
        "gap": float(np.abs(default_curves - variant_curves)[:, 1:].mean()),
        "seed_gap": float(np.abs(default_curves[1:] - default_curves[:-1])[:, 1:].mean()) if seeds > 1 else float("nan"),
        "final": (float(default_curves[:, -1].mean()), float(variant_curves[:, -1].mean())),
        "speed": seconds["default"] / max(seconds["variant"], 1e-9),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategy", default="typiclust")
    parser.add_argument("--variant", default='{"clustering": "subspace"}', help="the variant's parameters (JSON)")
    parser.add_argument("--store", default="/work/main/embeddings")
    parser.add_argument("--only", default="", help="entries whose 'dataset / embedder' contains this")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=10)
    args = parser.parse_args(argv)
    variant = json.loads(args.variant)
    print(f"{args.strategy} default against {variant}: {args.seeds} seeds, 20 + {args.cycles} x 20 labels, 1 thread\n")
    print("| entry | same picks as default | default again, other seed | curve gap (acc) | "
          "default seed-to-seed gap | final acc default / variant | default / variant query s |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for label, data in store_entries(args.store):
        if args.only not in label:
            continue
        with threads(1):
            result = compare(data, args.strategy, variant, args.seeds, args.cycles)
        rows.append(result)
        print(f"| {label} | {result['same_variant']:.2f} | {result['same_seed']:.2f} | {result['gap']:.4f} | "
              f"{result['seed_gap']:.4f} | {result['final'][0]:.3f} / {result['final'][1]:.3f} | {result['speed']:.1f} |",
              flush=True)
    if rows:
        mean = {key: np.mean([r[key] for r in rows]) for key in ("same_variant", "same_seed", "gap", "seed_gap", "speed")}
        print(f"| mean | {mean['same_variant']:.2f} | {mean['same_seed']:.2f} | {mean['gap']:.4f} | "
              f"{mean['seed_gap']:.4f} | | {mean['speed']:.1f} |")


if __name__ == "__main__":
    main()
