"""Statistics of a grid's results: pure functions of tidy tables (no I/O, no plotting).

The sample unit is a *problem* (dataset x embedder) with seeds averaged: seeds of one problem
share its data, so they are not independent samples of the method's quality (Demsar 2006).
Methods are compared with average ranks, a Friedman test, then pairwise Wilcoxon signed-rank
with Holm correction (Benavoli, Corani and Mangili 2016) and a win/tie/loss count that reports
ties, with the smallest adjusted p the table can reach (its power). Units are few (3 seeds, 3 to
9 problems), so every interval of a mean is Student's t interval, and a correlation's is Fisher's
z with the datasets' effect removed: the percentile bootstrap covers the mean of 3 normal values
about 75 % of the time at a nominal 95 % (``orchestrator.report.coverage`` simulates each method
at the unit counts the report uses). Every function returns plain data plus ``messages`` where
an input is too small, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from orchestrator.report.curve_band import LEVEL, t_half_width
from orchestrator.results import PROBLEM
from workers.metrics import normalized_auc


def auc_family(steps, values, early_cycles: int | None = None) -> dict[str, float]:
    """Full, early (first ``early_cycles`` points; default a third) and late AUC of one curve,
    each ``workers.metrics.normalized_auc`` (the one AUC of albench), and the final value."""
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    k = early_cycles if early_cycles is not None else max(2, round(len(x) / 3))
    k = min(max(k, 1), len(x))
    return {"auc": normalized_auc(x, y), "early_auc": normalized_auc(x[:k], y[:k]),
            "late_auc": normalized_auc(x[-k:], y[-k:]), "final": float(y[-1])}


def t_interval(values, level: float = LEVEL) -> tuple[float, float] | None:
    """Student's t interval of the mean of ``values`` (None with fewer than two values)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return None
    half = float(t_half_width(v.std(ddof=1), len(v), level))
    return float(v.mean() - half), float(v.mean() + half)


def mean_interval(values, unit: str, level: float = LEVEL) -> dict:
    """The mean of ``values``, its t interval (None below two values) and its unit, as a row."""
    v = np.asarray(values, dtype=np.float64)
    found = t_interval(v, level)
    return {"mean": float(v.mean()) if len(v) else None, "ci_low": found[0] if found else None,
            "ci_high": found[1] if found else None, "n": len(v), "unit": unit}


def within_correlation(x, y, groups, level: float = LEVEL) -> dict:
    """Pearson's r of ``x`` and ``y`` after removing each group's mean (a dataset's effect: the
    correlation *within* datasets), with Fisher's z interval for a partial correlation (standard
    error 1 / sqrt(n - groups - 2)). Needs at least groups + 3 points and spread within groups."""
    frame = pd.DataFrame({"x": np.asarray(x, dtype=np.float64), "y": np.asarray(y, dtype=np.float64),
                          "g": list(groups)}).dropna()
    n, g = len(frame), frame["g"].nunique()
    out = {"r": None, "ci_low": None, "ci_high": None, "p": None, "n": n, "groups": g}
    if n - g - 2 < 1:
        return {**out, "message": f"a within-dataset correlation needs >= datasets + 3 points (have {n} "
                                  f"points in {g} datasets)"}
    dx = frame["x"] - frame.groupby("g")["x"].transform("mean")
    dy = frame["y"] - frame.groupby("g")["y"].transform("mean")
    if np.ptp(dx) == 0 or np.ptp(dy) == 0:
        return {**out, "message": "no spread within datasets"}
    r = float(np.clip(np.corrcoef(dx, dy)[0, 1], -0.999999, 0.999999))
    half = sps.norm.ppf(0.5 + level / 2) / np.sqrt(n - g - 2)
    df = n - g - 1
    p = float(2 * sps.t.sf(abs(r) * np.sqrt(df / (1 - r * r)), df))
    return {**out, "r": r, "ci_low": float(np.tanh(np.arctanh(r) - half)),
            "ci_high": float(np.tanh(np.arctanh(r) + half)), "p": p, "message": None}


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p of the exact Wilcoxon signed-rank test over ``n`` differences
    (every difference of one sign): 2 / 2**n."""
    return min(1.0, 2.0 * 0.5 ** n) if n > 0 else 1.0


def power(n: int, pairs: int, alpha: float = 0.05) -> dict:
    """What a pairwise Wilcoxon-Holm table over ``n`` problems and ``pairs`` pairs can show: the
    smallest adjusted p any pair can reach (Holm multiplies the smallest p by the number of
    pairs), whether it is below ``alpha``, and how many problems it would take."""
    smallest = min(1.0, pairs * min_wilcoxon_p(n))
    needed = next(k for k in range(1, 200) if pairs * min_wilcoxon_p(k) < alpha) if pairs else 0
    return {"problems": n, "pairs": pairs, "min_adjusted_p": smallest, "can_reach_alpha": smallest < alpha,
            "problems_needed": needed, "alpha": alpha}


def power_words(found: dict) -> str:
    """``power``'s answer in one sentence."""
    head = (f"With {found['problems']} problems and {found['pairs']} pairs the smallest Holm-adjusted "
            f"p any pair can reach is {found['min_adjusted_p']:.3g}")
    if found["can_reach_alpha"]:
        return head + f" (below alpha {found['alpha']}): a pair can be separated when its evidence is strong."
    return (head + f", not below alpha {found['alpha']}: no pair can be separated by construction, every "
            f"pair reads as a tie; {found['problems_needed']} problems would be needed.")


@dataclass
class Gains:
    """Gain over random per (problem, strategy): mean over seeds, t interval over seeds (paired)."""

    table: pd.DataFrame
    messages: list[str] = field(default_factory=list)


def gain_over_random(trials: pd.DataFrame, metric: str = "auc_accuracy", *, random: str = "random",
                     ) -> Gains:
    """``metric`` of each strategy minus random's, paired by (problem, initial pool, seed); the
    interval is the t interval over the seeds of the problem (the unit: a seed)."""
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
        found = mean_interval(diff, "seed")
        rows.append({"dataset": dataset, "embedder": embedder, "strategy": strategy,
                     "gain": found["mean"], "ci_low": found["ci_low"], "ci_high": found["ci_high"],
                     "seeds": len(diff)})
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
    power: dict = field(default_factory=dict)
    """``power(n_problems, pairs)``: whether any pair can be separated at all."""
    better_on: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    """Row better / equal / worse than column on how many problems (counts, not a test)."""


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
    reach = power(n, len(pairs), alpha)
    if pairs and not reach["can_reach_alpha"]:
        messages.append(power_words(reach))
    adjusted = holm(raw) if raw else []
    pairwise = {a: {} for a in names}
    wtl = {a: {} for a in names}
    signs = {a: {} for a in names}
    for (a, b), p in zip(pairs, adjusted):
        pairwise[a][b] = pairwise[b][a] = float(p)
        d = scores[a].to_numpy() - scores[b].to_numpy()
        counts = [int((d > 0).sum()), int((d == 0).sum()), int((d < 0).sum())]
        signs[a][b], signs[b][a] = counts, counts[::-1]
        if p >= alpha or abs(d.mean()) < tie_threshold:
            wins, ties, losses = 0, n, 0
        else:
            wins, losses = int((d > 0).sum()), int((d < 0).sum())
            ties = n - wins - losses
        wtl[a][b] = [wins, ties, losses]
        wtl[b][a] = [losses, ties, wins]
    return Comparison(ranks, friedman, pairwise, wtl, n, messages, reach, signs)
