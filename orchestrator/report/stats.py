"""Statistics of a grid's results: pure functions of tidy tables (no I/O, no plotting).

The sample unit is a *problem* (dataset x embedder) with seeds averaged: seeds of one problem
share its data, so they are not independent samples of the method's quality (Demsar 2006).
Methods are compared with average ranks, a Friedman test, then pairwise Wilcoxon signed-rank
with Holm correction (Benavoli, Corani and Mangili 2016) and a win/tie/loss count that reports
ties. Every function returns plain data plus ``messages`` where an input is too small, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from orchestrator.results import PROBLEM


def auc_family(steps, values, early_cycles: int | None = None) -> dict[str, float]:
    """Full, early (first ``early_cycles`` points; default a third) and late AUC of one curve,
    each the trapezoid area over its x-range divided by that range, and the final value."""
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    k = early_cycles if early_cycles is not None else max(2, round(len(x) / 3))
    k = min(max(k, 1), len(x))

    def area(xs, ys):
        if len(xs) < 2 or xs[-1] == xs[0]:
            return float(ys.mean()) if len(ys) else 0.0
        return float(np.trapezoid(ys, xs) / (xs[-1] - xs[0]))

    return {"auc": area(x, y), "early_auc": area(x[:k], y[:k]),
            "late_auc": area(x[-k:], y[-k:]), "final": float(y[-1])}


def bootstrap_ci(values, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (seeded); a single value gives (value, value)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return (float(v[0]), float(v[0])) if len(v) else (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@dataclass
class Gains:
    """Gain over random per (problem, strategy): mean over seeds, bootstrap CI, seeds paired."""

    table: pd.DataFrame
    messages: list[str] = field(default_factory=list)


def gain_over_random(trials: pd.DataFrame, metric: str = "auc_accuracy", *, random: str = "random",
                     n_boot: int = 2000, seed: int = 0) -> Gains:
    """``metric`` of each strategy minus random's, paired by (problem, initial pool, seed)."""
    done = trials[trials["status"] == "FINISHED"] if "status" in trials else trials
    keys = [*PROBLEM, "initial_pool", "seed"]
    cell = [*PROBLEM, "strategy"]
    base = done.loc[done["strategy"] == random, [*keys, metric]]
    rows, messages = [], []
    if base.empty:
        return Gains(pd.DataFrame(columns=[*PROBLEM, "strategy", "gain", "ci_low", "ci_high", "seeds"]),
                     [f"no finished {random!r} trials: gains over random cannot be computed"])
    others = done.loc[done["strategy"] != random, [*keys, "strategy", metric]]
    paired = others.merge(base, on=keys, suffixes=("", "__random"))  # one merge, not one lookup per cell
    paired["diff"] = paired[metric] - paired[f"{metric}__random"]
    groups = {key: group["diff"].to_numpy() for key, group in paired.groupby(cell)}
    for dataset, embedder, strategy in others[cell].drop_duplicates().sort_values(cell).itertuples(index=False):
        diff = groups.get((dataset, embedder, strategy))
        if diff is None:
            messages.append(f"{dataset}/{embedder}/{strategy}: no {random!r} run with the same seed")
            continue
        if len(diff) == 1:
            messages.append(f"{dataset}/{embedder}/{strategy}: one seed, no confidence interval")
        lo, hi = bootstrap_ci(diff, n_boot=n_boot, seed=seed)
        rows.append({"dataset": dataset, "embedder": embedder, "strategy": strategy,
                     "gain": float(diff.mean()), "ci_low": lo, "ci_high": hi, "seeds": len(diff)})
    return Gains(pd.DataFrame(rows), messages)


def problem_scores(trials: pd.DataFrame, metric: str = "auc_accuracy") -> pd.DataFrame:
    """Problems x strategies, seeds averaged; only problems where every strategy has a value."""
    done = trials[trials["status"] == "FINISHED"] if "status" in trials else trials
    table = done.groupby([*PROBLEM, "strategy"])[metric].mean().unstack("strategy")
    return table.dropna()


def average_ranks(scores: pd.DataFrame) -> pd.Series:
    """Mean rank per strategy over problems (1 = best, higher score better, ties averaged)."""
    return scores.rank(axis=1, ascending=False).mean().sort_values()


@dataclass
class Comparison:
    ranks: dict[str, float]
    friedman: dict | None
    pairwise_p: dict[str, dict[str, float]]
    win_tie_loss: dict[str, dict[str, list[int]]]
    n_problems: int
    messages: list[str] = field(default_factory=list)


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (len(p) - i) * p[idx]))
        adjusted[idx] = running
    return adjusted


def compare(scores: pd.DataFrame, *, alpha: float = 0.05, tie_threshold: float = 0.0) -> Comparison:
    """Ranks, Friedman, pairwise Wilcoxon + Holm and win/tie/loss over the problems of ``scores``.

    A tie: the Holm-adjusted Wilcoxon p is not below ``alpha`` or the mean paired difference is
    below ``tie_threshold``; otherwise a win or loss per problem by its sign."""
    names = list(scores.columns)
    n = len(scores)
    messages = []
    ranks = average_ranks(scores).to_dict() if n else {}
    friedman = None
    if len(names) >= 3 and n >= 2:
        stat, p = sps.friedmanchisquare(*(scores[c].to_numpy() for c in names))
        friedman = {"statistic": float(stat), "p": float(p), "k": len(names), "n": n}
    else:
        messages.append(f"Friedman test needs >= 3 strategies and >= 2 problems (have {len(names)}, {n})")
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    raw = []
    for a, b in pairs:
        d = scores[a].to_numpy() - scores[b].to_numpy()
        raw.append(float(sps.wilcoxon(d).pvalue) if n >= 2 and np.any(d != 0) else 1.0)
    if n < 6:
        messages.append(f"{n} problems: Wilcoxon cannot reach p < 0.05 below 6 problems")
    adjusted = holm(raw) if raw else []
    pairwise = {a: {} for a in names}
    wtl = {a: {} for a in names}
    for (a, b), p in zip(pairs, adjusted):
        pairwise[a][b] = pairwise[b][a] = float(p)
        d = scores[a].to_numpy() - scores[b].to_numpy()
        if p >= alpha or abs(d.mean()) < tie_threshold:
            wins, ties, losses = 0, n, 0
        else:
            wins, losses = int((d > 0).sum()), int((d < 0).sum())
            ties = n - wins - losses
        wtl[a][b] = [wins, ties, losses]
        wtl[b][a] = [losses, ties, wins]
    return Comparison(ranks, friedman, pairwise, wtl, n, messages)


def spearman_ci(x, y, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Spearman's rho of ``x`` against ``y`` with a seeded percentile bootstrap CI."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": None, "ci": None, "n": len(x),
                "message": f"Spearman's rho needs >= 3 distinct points (have {len(x)})"}
    rho = float(sps.spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(x), size=(n_boot, len(x)))
    bx, by = x[index], y[index]
    usable = (np.ptp(bx, axis=1) > 0) & (np.ptp(by, axis=1) > 0)  # a resample of one value has no rho
    rx = sps.rankdata(bx[usable], axis=1)  # Spearman's rho: Pearson's r of the ranks, all resamples at once
    ry = sps.rankdata(by[usable], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    boots = (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"rho": rho, "ci": [float(lo), float(hi)], "n": len(x), "message": None}
