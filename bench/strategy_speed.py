"""Time and peak memory of one query of every registered query strategy, beside scikit-activeml.

    python bench/strategy_speed.py                      # three 10k and 100k pools (~10 minutes)
    python bench/strategy_speed.py --quick              # one 10k pool, a smoke run (~3 minutes)
    python bench/strategy_speed.py --full               # D = 384..4096, C = 4..77 (~30 minutes)
    python bench/strategy_speed.py --sizes 1m --out bench-1m.md   # N = 1M, D = 1024, C = 77

Pools are synthetic Gaussian mixtures (rows L2-normalised, like sentence embeddings) with
L = 1000 labelled rows and a batch of B = 100; the 100k default is the target configuration
(N = 100k, D = 768, C = 20); the head is scikit-learn's LogisticRegression
fitted on the labelled rows, and its probabilities feed the strategies that need them. Every
(strategy, pool, implementation) runs in its own subprocess, so the peak RSS is honest and a
runaway is stopped: by the timeout (``--timeout``, 120 s) or when its resident memory passes
``--max-rss-gb``. A case an implementation failed is not retried on larger pools of the same
size (marked "skipped"). Measurements are single-threaded by default (``--threads``): on a
shared 2-core machine, multithreaded BLAS/OpenMP timings swing by up to 10x with the load.

Columns: time is the wall time of one ``select`` (albench) or ``query`` (scikit-activeml)
call; memory is the peak RSS during that call above the RSS before it (the pool itself is
not counted). scikit-activeml's calls include its classifier's ``predict_proba`` over the
pool, which albench's trajectory loop computes once for all strategies (listed under the
table).

scikit-activeml is not a dependency of albench. Without it only albench's figures are
printed; install it with ``pip install scikit-activeml==1.0.*``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import pickle
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # a checkout without install works too, from any folder

LABELLED = 1000
BATCH = 100
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
FULL_CASES = {  # pool size -> (D, C); the first 100k case is the target configuration
    "10k": [(384, 4), (384, 77), (1024, 20), (4096, 20)],
    "100k": [(768, 20), (384, 4), (1024, 77)],
    "1m": [(384, 20), (1024, 20), (1024, 77)],
}
DEFAULT_CASES = {  # a subset that runs in about 10 minutes on 2 cores
    "10k": [(384, 4), (1024, 77)],
    "100k": [(768, 20)],
    "1m": [(1024, 77)],
}
QUICK_CASES = {"10k": [(384, 20)]}
INSTALL_HINT = "pip install scikit-activeml==1.0.*"

# albench name -> (scikit-activeml class, its parameters, whether query takes the classifier).
# Parameters are set to albench's defaults where the two share one.
ANCHORS = {
    "random": ("RandomSampling", {}, False),
    "margin": ("UncertaintySampling", {"method": "margin_sampling"}, True),
    "entropy": ("UncertaintySampling", {"method": "entropy"}, True),
    "least_confidence": ("UncertaintySampling", {"method": "least_confident"}, True),
    "badge": ("Badge", {}, True),
    "coreset": ("CoreSet", {}, False),
    "typiclust": ("TypiClust", {"k": 20}, False),
    "probcover": ("ProbCover", {}, False),
    "dropquery": ("DropQuery", {"n_dropout_samples": 3, "dropout_rate": 0.75}, True),
}


# ------------------------------------------------------------------------------------ pools


@dataclass(frozen=True)
class Case:
    size: str
    n: int
    d: int
    c: int

    @property
    def key(self) -> str:
        return f"n{self.n}_d{self.d}_c{self.c}"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The process's peak RSS since start or the last reset (VmHWM; ``getrusage`` may also
    remember peaks of exited threads, which no reset clears)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measured(call) -> tuple[object, float, int]:
    """``call()``'s result, wall seconds, and peak RSS during it above the RSS before it.

    The kernel's peak-RSS mark is reset first (``/proc/self/clear_refs``), so earlier peaks
    (imports, loading, warm-up) do not count.
    """
    gc.collect()
    try:  # hand memory freed earlier (warm-up) back to the OS, so it is not reused unseen
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # no reset: the peak may include earlier ones
    before = rss_bytes()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    return result, seconds, max(0, peak_rss_bytes() - before)


def make_pool(case: Case, folder: Path) -> Path:
    """Write the pool, labels, labelled mask and fitted head of ``case`` once; reuse after."""
    from sklearn.linear_model import LogisticRegression

    path = folder / case.key
    if (path / "done").exists():
        return path
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(case.n + 7 * case.d + 13 * case.c)
    centres = rng.standard_normal((case.c, case.d), dtype=np.float32)
    labels = rng.integers(0, case.c, size=case.n)
    x = np.lib.format.open_memmap(path / "x.npy", mode="w+", dtype=np.float32, shape=(case.n, case.d))
    for start in range(0, case.n, 65536):
        stop = min(start + 65536, case.n)
        noise = rng.standard_normal((stop - start, case.d), dtype=np.float32)
        block = 0.6 * centres[labels[start:stop]] + noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[start:stop] = block
    x.flush()
    labelled = np.zeros(case.n, dtype=bool)
    labelled[rng.choice(case.n, size=LABELLED, replace=False)] = True
    model = LogisticRegression(max_iter=1000).fit(x[labelled], labels[labelled])
    coef = np.zeros((case.c, case.d), np.float32)
    intercept = np.full(case.c, -1e4, np.float32)  # classes absent from the labelled rows
    coef[model.classes_] = model.coef_
    intercept[model.classes_] = model.intercept_
    np.savez(path / "pool.npz", labels=labels, labelled=labelled, coef=coef, intercept=intercept)
    try:  # the same classifier, wrapped for scikit-activeml
        clf = anchor_classifier(x, labels, labelled, case.c)
        (path / "skactiveml_clf.pkl").write_bytes(pickle.dumps(clf))
    except ImportError:
        pass
    del x
    (path / "done").touch()
    return path


def anchor_classifier(x, labels, labelled, n_classes: int):
    """scikit-activeml's wrapper around the same logistic regression, fitted on the labelled rows."""
    from skactiveml.classifier import SklearnClassifier
    from sklearn.linear_model import LogisticRegression

    clf = SklearnClassifier(LogisticRegression(max_iter=1000), classes=np.arange(n_classes), random_state=0)
    return clf.fit(x[labelled], labels[labelled].astype(np.float64))


def load_pool(path: Path):
    x = np.load(path / "x.npy")
    meta = np.load(path / "pool.npz")
    return x, meta["labels"], meta["labelled"], meta["coef"], meta["intercept"]


# ------------------------------------------------------------------------------- one child


def run_albench(name: str, x, labels, labelled, coef, intercept) -> dict:
    from strategies import QUERY_STRATEGIES, LinearHead, QueryContext

    strategy = QUERY_STRATEGIES.create(name)
    head = LinearHead(weights=coef, bias=intercept)

    def context_of(rows):  # what the trajectory loop hands a strategy
        return QueryContext.for_strategy(strategy, x[rows], labelled[rows], coef.shape[0],
                                         labels=labels[rows], head=head)

    warm = np.arange(min(2000, x.shape[0]))
    warm_context = context_of(warm)
    if warm_context.labelled.any():
        strategy.select(warm_context, 20, np.random.default_rng(1))  # first-call costs
    del warm_context
    start = time.perf_counter()
    context = context_of(slice(None))
    probs_s = time.perf_counter() - start if context.probabilities is not None else None
    chosen, seconds, peak = measured(lambda: strategy.select(context, BATCH, np.random.default_rng(0)))
    assert len(set(chosen.tolist())) == BATCH and not labelled[chosen].any()
    return {"seconds": seconds, "peak_bytes": peak, "probs_s": probs_s}


def run_anchor(name: str, path: Path, x, labels, labelled, coef, intercept) -> dict:
    from skactiveml import pool

    class_name, params, takes_clf = ANCHORS[name]
    n_classes = coef.shape[0]
    extra = {"n_classes": n_classes} if class_name == "ProbCover" else {}
    def strategy():  # a fresh object per call: some (ProbCover) keep state between queries
        return getattr(pool, class_name)(random_state=0, **params, **extra)

    y = np.where(labelled, labels, np.nan).astype(np.float64)
    kwargs = {"batch_size": BATCH}
    if takes_clf:
        cached = path / "skactiveml_clf.pkl"  # absent if the pool predates installing skactiveml
        if cached.exists():
            clf = pickle.loads(cached.read_bytes())
        else:
            clf = anchor_classifier(x, labels, labelled, n_classes)
        kwargs.update(clf=clf, fit_clf=False)
    warm = np.arange(min(2000, x.shape[0]))
    strategy().query(x[warm], y[warm], **{**kwargs, "batch_size": 20})
    timed = strategy()
    chosen, seconds, peak = measured(lambda: np.asarray(timed.query(x, y, **kwargs)))
    assert len(set(chosen.tolist())) == BATCH and not labelled[chosen].any()
    return {"seconds": seconds, "peak_bytes": peak}


def child(job: dict) -> None:
    path = Path(job["path"])
    data = load_pool(path)
    if job["impl"] == "albench":
        result = run_albench(job["name"], *data)
    else:
        result = run_anchor(job["name"], path, *data)
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------ the parent


def run_child(job: dict, timeout: float, max_rss: float) -> dict:
    """Run one measurement in a subprocess; stop it past ``timeout`` s or ``max_rss`` bytes."""
    threads = str(job["threads"])
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(job)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    start = time.monotonic()
    status = None
    while proc.poll() is None:
        time.sleep(0.1)
        try:
            with open(f"/proc/{proc.pid}/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            rss = 0
        if rss > max_rss:
            status = f"RSS > {max_rss / 2**30:.0f} GiB"
        elif time.monotonic() - start > timeout:
            status = f"> {timeout:.0f} s"
        if status:
            proc.kill()
            break
    out, err = proc.communicate()
    if status:
        return {"status": status}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return {"status": "ok", **json.loads(line[7:])}
    last = (err.strip().splitlines() or ["no output"])[-1]
    return {"status": f"error: {last[:80]}"}


def fmt_time(r: dict) -> str:
    return f"{r['seconds']:.2f}" if r.get("status") == "ok" else r.get("status", "-")


def fmt_mem(r: dict) -> str:
    return f"{r['peak_bytes'] / 2**20:.1f}" if r.get("status") == "ok" else "-"


def ratio(ours: dict, anchor: dict, key: str, floor: float) -> str:
    """anchor / ours; "-" when either failed or ours is below ``floor`` (noise)."""
    if ours.get("status") != "ok" or anchor.get("status") != "ok" or ours[key] < floor:
        return "-"
    return f"{anchor[key] / ours[key]:.1f}x"


HEADER = (
    "| N | D | C | strategy | albench s | albench MiB | skactiveml s | skactiveml MiB "
    "| time ratio | memory ratio |\n|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10k,100k", help="comma list of 10k, 100k, 1m")
    parser.add_argument("--quick", action="store_true", help="one 10k pool only")
    parser.add_argument("--full", action="store_true",
                        help="every (D, C) case of each size (10k and 100k: about 30 minutes)")
    parser.add_argument("--strategies", default="", help="comma list (default: all registered)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per measurement")
    parser.add_argument("--anchor-timeout", type=float,
                        help="seconds per scikit-activeml measurement (default: --timeout)")
    parser.add_argument("--max-rss-gb", type=float, default=10.0, help="memory cap per measurement")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads per measurement (1: stable on a shared machine)")
    parser.add_argument("--cache", default="/tmp/albench-bench", help="where pools are kept")
    parser.add_argument("--out", help="also write the markdown table to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    from strategies import QUERY_STRATEGIES

    names = [s for s in args.strategies.split(",") if s] or QUERY_STRATEGIES.names()
    try:
        import skactiveml

        anchors_available = True
        anchor_note = f"scikit-activeml {skactiveml.__version__}"
    except ImportError:
        anchors_available = False
        anchor_note = f"scikit-activeml not installed ({INSTALL_HINT}): albench only"
    grid = FULL_CASES if args.full else DEFAULT_CASES
    grid = QUICK_CASES if args.quick else {size: grid[size] for size in args.sizes.split(",")}
    cases = [Case(size, SIZES[size], d, c) for size, pairs in grid.items() for d, c in pairs]
    cache = Path(args.cache)
    max_rss = args.max_rss_gb * 2**30
    anchor_timeout = args.timeout if args.anchor_timeout is None else args.anchor_timeout
    title = (
        f"B = {BATCH}, L = {LABELLED}; {anchor_note}; {args.threads} thread(s); "
        f"timeout {args.timeout:.0f} s (scikit-activeml {anchor_timeout:.0f} s), memory cap {args.max_rss_gb:.0f} GiB; times in seconds, "
        "memory = peak RSS above the pool's, MiB; ratio = skactiveml / albench"
    )
    lines = [title, "", HEADER]
    print("\n".join(lines), flush=True)
    failed: dict[tuple[str, str, str], Case] = {}  # (impl, name, size) -> the case it failed on
    probs_seconds: dict[Case, float] = {}  # the pool's probabilities, once per case
    for case in cases:
        path = make_pool(case, cache)
        for name in names:
            results = {}
            for impl in ("albench", "skactiveml"):
                if impl == "skactiveml" and not (anchors_available and name in ANCHORS):
                    results[impl] = {"status": "-" if anchors_available else "not installed"}
                    continue
                earlier = failed.get((impl, name, case.size))
                if earlier and earlier.d <= case.d and earlier.c <= case.c:
                    results[impl] = {"status": f"skipped (failed at D={earlier.d}, C={earlier.c})"}
                    continue
                job = {"impl": impl, "name": name, "path": str(path), "threads": args.threads}
                limit = args.timeout if impl == "albench" else anchor_timeout
                results[impl] = run_child(job, limit, max_rss)
                if results[impl]["status"] != "ok":
                    failed.setdefault((impl, name, case.size), case)
            ours, anchor = results["albench"], results["skactiveml"]
            if ours.get("probs_s") is not None:
                probs_seconds.setdefault(case, ours["probs_s"])
            row = (f"| {case.n:,} | {case.d} | {case.c} | {name} | {fmt_time(ours)} | {fmt_mem(ours)} "
                   f"| {fmt_time(anchor)} | {fmt_mem(anchor)} | {ratio(ours, anchor, 'seconds', 1e-3)} "
                   f"| {ratio(ours, anchor, 'peak_bytes', 2**20)} |")
            lines.append(row)
            print(row, flush=True)
    notes = [""] + [
        f"- N={c.n:,} D={c.d} C={c.c}: the pool's probabilities (not in albench's times) "
        f"take {seconds:.2f} s" for c, seconds in probs_seconds.items()
    ]
    lines += notes
    print("\n".join(notes), flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
