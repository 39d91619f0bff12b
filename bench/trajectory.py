"""Whole trajectories per strategy at the study's shapes: learner and query time, peak memory,
against random sampling, an older commit's strategies and scikit-activeml, side by side.

    python bench/trajectory.py                                    # study shapes, every strategy
    python bench/trajectory.py --pool 5000 --dims 1024 --cycles 5 # a smaller shape, quickly
    python bench/trajectory.py --before 67fed6c --before-cycles 1,10,20 --threads 1,2 --anchors
    python bench/trajectory.py --store /work/main/embeddings --strategies random,typiclust
    python bench/trajectory.py --strategies "typiclust,typiclust(clustering=subspace),probcover(delta_per=pool)"

Data: ``bench.learner.gaussian_mixture`` at ``--pool/--test/--dims/--classes`` (default the
study's: 20,000 / 5,000 / 4,096 / 77, unit-norm float32 rows), and with ``--store`` every
(dataset, embedder) entry of that embedding store. Protocol: 20 random rows, then ``--cycles``
queries of 20 by the strategy, the default learner refitted every cycle (``run_trajectory``
itself, ``--threads`` BLAS threads: 1 as in the trajectory stage, 2 to see what a second core
buys). Per strategy: the trajectory's seconds, split into the learner's fits and the queries,
the mean and the largest query, the trajectory as a multiple of random sampling's, the peak
RSS above the process's before it.

``--before COMMIT``: the strategies as they were at COMMIT (loaded from git beside today's)
select on the same contexts as today's at the cycles ``--before-cycles`` (their picks are not
used): their query seconds there, the ratio to today's, and whether they pick the same rows.
``--anchors``: the same protocol through scikit-activeml's strategies with a plain scikit-learn
``LogisticRegression`` (``pip install -e '.[bench]'``), from the same initial pool. Any
trajectory stops at ``--cap`` seconds; its totals are then extrapolated from the cycles done
(marked ``~``). Times are ratios of runs in one process, never absolute figures to compare
across runs or machines.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # a checkout without install works too, from any folder

from bench.learner import STUDY_SHAPES, gaussian_mixture, synthetic_trial
from bench.strategy_speed import ANCHORS, peak_rss_bytes, rss_bytes


def strategies_of(commit: str):
    """The ``strategies`` package as it was at ``commit``, imported as ``strategies_<commit>``."""
    name = f"strategies_{commit[:7]}"
    if name in sys.modules:
        return sys.modules[name]
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "strategies"],
                             check=True, capture_output=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="albench-before-"))
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "strategies").rename(folder / name)
    for path in (folder / name).glob("*.py"):
        text = path.read_text().replace("from strategies", f"from {name}").replace("import strategies", f"import {name}")
        path.write_text(text.replace("strategies.registry", f"{name}.registry"))
    sys.path.insert(0, str(folder))
    return __import__(name)


class Shadowed:
    """Today's strategy, and at some cycles also an older one timed on the same context and a
    copy of the same rng (its picks discarded)."""

    def __init__(self, strategy, older, context_class, cycles: set[int]) -> None:
        self.strategy, self.older, self.context_class, self.cycles = strategy, older, context_class, cycles
        self.needs, self.cold_start = strategy.needs, strategy.cold_start
        self.cycle, self.before, self.peak = 0, {}, 0

    def select(self, context, n, rng):
        self.cycle += 1
        if self.cycle in self.cycles:
            self.peak = max(self.peak, peak_rss_bytes())  # today's peak so far, before the old code's
            older_context = self.context_class(**{f.name: getattr(context, f.name) for f in dataclasses.fields(context)})
            copied = copy.deepcopy(rng)
            began = time.perf_counter()
            old_chosen = self.older.select(older_context, n, copied)
            seconds = time.perf_counter() - began
            chosen = self.strategy.select(context, n, rng)
            self.before[self.cycle] = (seconds, bool(np.array_equal(old_chosen, chosen)))
            reset_peak()
            return chosen
        return self.strategy.select(context, n, rng)


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


@contextmanager
def threads(count: int):
    """Every BLAS/OpenMP pool (and torch's) at ``count`` threads, inside ``run_trajectory`` too."""
    import torch
    from threadpoolctl import threadpool_limits

    from workers import trajectory

    original, torch_threads = trajectory.threadpool_limits, torch.get_num_threads()
    trajectory.threadpool_limits = lambda limits: threadpool_limits(limits=count)
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        trajectory.threadpool_limits = original
        torch.set_num_threads(torch_threads)


def albench_trajectory(trial, data, cap: float, before=None, before_cycles=()) -> dict:
    """One trajectory through ``run_trajectory``: seconds (total, learner, per query), peak."""
    from workers import trajectory

    original = trajectory.build_strategy
    shadow = None
    if before is not None:
        def build(spec, initial_pool=False):
            nonlocal shadow
            if initial_pool:
                return original(spec, initial_pool)
            try:
                older = before.QUERY_STRATEGIES.create(spec.name, spec.params)
            except ValueError:  # a variant the older commit does not have: nothing to compare
                return original(spec)
            shadow = Shadowed(original(spec), older, before.QueryContext, set(before_cycles))
            return shadow
        trajectory.build_strategy = build
    try:
        fits, queries, initial, shadowed = [], [], None, 0.0
        baseline = rss_bytes()
        reset_peak()
        began = time.perf_counter()
        for record in trajectory.run_trajectory(trial, data):
            fits.append(record.fit_seconds)
            if record.cycle == 0:
                initial = record.checkpoint.labelled_order
            else:  # less the older strategy's select, timed inside this one's
                old = shadow.before.get(record.cycle, (0.0,))[0] if shadow else 0.0
                shadowed += old
                queries.append(record.query_seconds - old)
            if time.perf_counter() - began - shadowed > cap:
                break
        total = time.perf_counter() - began - shadowed
        peak = max(peak_rss_bytes(), shadow.peak if shadow else 0) - baseline
    finally:
        trajectory.build_strategy = original
    return summary(total, fits, queries, trial.protocol.n_cycles, peak,
                   before=shadow.before if shadow else {}, initial=initial)


def summary(total, fits, queries, n_cycles, peak, **extra) -> dict:
    """Totals of a trajectory, extrapolated to ``n_cycles`` queries if it stopped early: fits
    (and the rest) by the fits done, queries by the queries done (an early stop's fits are the
    cheap ones, with few labels: its learner seconds are an underestimate)."""
    done = len(queries)
    scale = (n_cycles + 1) / max(1, len(fits))
    cut = done < n_cycles
    query = (np.mean(queries) * n_cycles) if queries else 0.0
    rest = total - sum(fits) - sum(queries)
    return {"total": (sum(fits) + rest) * scale + query if cut else total, "fit": sum(fits) * scale,
            "query": query, "mean_query": float(np.mean(queries or [0])),
            "max_query": float(np.max(queries or [0])), "cut": cut, "peak": peak, **extra}


def anchor_trajectory(name: str, data, initial, n_classes: int, n_cycles: int, size: int, cap: float) -> dict:
    """The same protocol through scikit-activeml's strategy and a plain scikit-learn learner."""
    from skactiveml import pool
    from skactiveml.classifier import SklearnClassifier
    from sklearn.linear_model import LogisticRegression

    class_name, params, takes_clf = ANCHORS[name]
    extra = {"n_classes": n_classes} if class_name == "ProbCover" else {}
    strategy = getattr(pool, class_name)(random_state=0, **params, **extra)
    x = data.train_x
    y = np.full(x.shape[0], np.nan)
    y[initial] = data.train_y[initial]
    fits, queries, clf = [], [], None
    baseline = rss_bytes()
    reset_peak()
    began = time.perf_counter()
    for cycle in range(n_cycles + 1):
        if cycle:
            kwargs = {"clf": clf, "fit_clf": False} if takes_clf else {}
            started = time.perf_counter()
            chosen = strategy.query(x, y, batch_size=size, **kwargs)
            queries.append(time.perf_counter() - started)
            y[chosen] = data.train_y[chosen]
        started = time.perf_counter()
        clf = SklearnClassifier(LogisticRegression(max_iter=1000), classes=np.arange(n_classes), random_state=0)
        clf.fit(x, y)
        clf.predict(data.test_x)
        fits.append(time.perf_counter() - started)
        if time.perf_counter() - began > cap:
            break
    return summary(time.perf_counter() - began, fits, queries, n_cycles, peak_rss_bytes() - baseline)


def store_entries(root: str):
    """(label, TrialData) of every entry of an embedding store."""
    from workers.store import EmbeddingStore
    from workers.trajectory import TrialData

    store = EmbeddingStore(root)
    for folder in sorted(p for p in Path(root).glob("*/*") if (p / "manifest.json").exists()):
        embedder = folder.name.rsplit("-", 1)[0]
        key = json.loads((folder / "manifest.json").read_text())["key"]  # the folder has its first 16 characters
        train, test = (store.read(folder.parent.name, embedder, key, split) for split in ("train", "test"))
        yield (f"{folder.parent.name} / {embedder}",
               TrialData(train.embeddings, train.labels.astype(np.int64), test.embeddings, test.labels.astype(np.int64)))


def strategy_params(label: str) -> tuple[str, dict]:
    """``"typiclust(clustering=subspace,k=10)"`` -> ``("typiclust", {"clustering": "subspace", "k": 10})``:
    a strategy and the parameters of a variant (values read as JSON, else as strings)."""
    name, _, inner = label.partition("(")
    params = {}
    for item in filter(None, inner.rstrip(")").split(",")):
        key, _, value = item.partition("=")
        try:
            params[key.strip()] = json.loads(value)
        except ValueError:
            params[key.strip()] = value.strip()
    return name.strip(), params


def fmt(result: dict, key: str) -> str:
    return ("~" if result["cut"] and key in ("total", "fit", "query") else "") + f"{result[key]:.2f}"


def bench(label: str, data, names: list[str], args, before) -> None:
    n_classes = int(max(data.train_y.max(), data.test_y.max())) + 1
    print(f"\n## {label}: pool {data.train_x.shape[0]}, test {data.test_x.shape[0]}, {data.train_x.shape[1]} dims, "
          f"{n_classes} classes, 20 + {args.cycles} x 20 labels")
    with threads(1):  # imports and first-call costs, outside every timed trajectory
        albench_trajectory(synthetic_trial(n_classes, "random", 1), data, args.cap)
    for count in args.threads:
        header = "| strategy | total s | learner s | queries s | query s/cycle mean (max) | x random | peak MiB |"
        if before is not None:
            header += f" before s/cycle at cycles {','.join(map(str, args.before_cycles))} | before / now | same picks |"
        if args.anchors:
            header += " skactiveml query s/cycle | skactiveml / albench query | skactiveml / albench total |"
        print(f"\n{count} thread{'s' if count > 1 else ''}\n\n{header}\n|" + "---|" * (header.count("|") - 1))
        random_total = None
        for name in names:
            strategy, params = strategy_params(name)
            trial = synthetic_trial(n_classes, strategy, args.cycles, params=params)
            with threads(count):
                ours = albench_trajectory(trial, data, args.cap, before, args.before_cycles)
            random_total = ours["total"] if name == "random" else random_total
            row = (f"| {name} | {fmt(ours, 'total')} | {fmt(ours, 'fit')} | {fmt(ours, 'query')} | "
                   f"{ours['mean_query']:.3f} ({ours['max_query']:.3f}) | "
                   f"{ours['total'] / random_total if random_total else float('nan'):.2f} | {ours['peak'] / 2**20:.0f} |")
            if before is not None:
                timed = ours["before"]
                old = np.mean([s for s, _ in timed.values()]) if timed else float("nan")
                row += (f" {', '.join(f'{s:.2f}' for s, _ in timed.values()) or '-'} | "
                        f"{old / max(ours['mean_query'], 1e-9):.1f} | "
                        f"{('yes' if all(same for _, same in timed.values()) else 'no') if timed else '-'} |")
            if args.anchors:
                if name in ANCHORS:  # a strategy's default only: "typiclust(...)" is not a key
                    with threads(count):
                        theirs = anchor_trajectory(name, data, ours["initial"], n_classes, args.cycles, 20, args.cap)
                    row += (f" {theirs['mean_query']:.3f} | {theirs['mean_query'] / max(ours['mean_query'], 1e-9):.1f} | "
                            f"{'~' if theirs['cut'] else ''}{theirs['total'] / ours['total']:.2f} |")
                else:
                    row += " - | - | - |"
            print(row, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for option, default in STUDY_SHAPES.items():
        parser.add_argument(f"--{option}", type=int, default=default)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--strategies", help="comma-separated (default: every registered query strategy); "
                        "a variant as name(key=value,...), e.g. typiclust(clustering=subspace)")
    parser.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2")
    parser.add_argument("--before", help="a commit whose strategies select beside today's")
    parser.add_argument("--before-cycles", default="1", help="the cycles at which they do (comma-separated)")
    parser.add_argument("--anchors", action="store_true", help="also scikit-activeml's trajectories")
    parser.add_argument("--store", help="also every entry of this embedding store")
    parser.add_argument("--no-synthetic", action="store_true", help="only the store's entries")
    parser.add_argument("--cap", type=float, default=600.0, help="seconds after which a trajectory stops")
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    args.before_cycles = [int(c) for c in args.before_cycles.split(",")]
    from strategies import QUERY_STRATEGIES

    names = re.split(r",(?![^()]*\))", args.strategies) if args.strategies else QUERY_STRATEGIES.names()
    names = ["random"] + [n for n in names if n != "random"]  # the baseline first
    if args.anchors:
        try:
            import skactiveml
            print(f"scikit-activeml {skactiveml.__version__}")
        except ImportError:
            print("scikit-activeml is not installed (pip install -e '.[bench]'): its columns are left out")
            args.anchors = False
    before = strategies_of(args.before) if args.before else None
    warnings.simplefilter("ignore")
    if not args.no_synthetic:
        data = gaussian_mixture(args.pool, args.test, args.dims, args.classes)
        bench("synthetic Gaussian mixture", data, names, args, before)
    for label, data in store_entries(args.store) if args.store else ():
        bench(label, data, names, args, before)


if __name__ == "__main__":
    main()
