"""The initial pool: each diversity pool (typiclust, coreset, probcover, ...) against the random
pool, in early and full AUC, per embedder, paired by seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.report import stats
from orchestrator.report.data import RANDOM
from orchestrator.report.page import Section, notes, table, words

NAME = "initial-pool"
AFTER = "heatmap"
TITLE = "Initial pool"
METRICS = {"early_auc_{}": "early AUC", "auc_{}": "full AUC"}
UNIT = ("a dataset (per embedder) or a problem (all embedders): the strategies and seeds of one dataset "
        "share its pool draws, so they are averaged first, never counted as units")


def pool_gains(done: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, list[str]]:
    """Per (embedder, pool), and over all embedders: ``metric`` of the pool minus the random
    pool's for the same dataset, strategy and seed, averaged over strategies and seeds per
    dataset (one unit per dataset: its strategies share the pool draw of each seed); the mean
    with its t interval over those units."""
    keys = ["dataset", "embedder", "strategy", "seed"]
    base = done[done["initial_pool"] == RANDOM].set_index(keys)[metric]
    rows, messages = [], []
    others = done[done["initial_pool"] != RANDOM]
    for pool in others["initial_pool"].drop_duplicates():
        values = others[others["initial_pool"] == pool].set_index(keys)[metric]
        paired = values.index.intersection(base.index)
        if len(paired) == 0:
            messages.append(f"{pool}: no complete random-pool cell with the same dataset, strategy and seed")
            continue
        per_problem = (values.loc[paired] - base.loc[paired]).groupby(level=["dataset", "embedder"]).mean()
        for embedder in [*per_problem.index.get_level_values("embedder").unique(), None]:
            units = per_problem if embedder is None else per_problem.xs(embedder, level="embedder")
            if embedder is None and per_problem.index.get_level_values("embedder").nunique() < 2:
                continue
            found = stats.mean_interval(units.to_numpy(dtype=np.float64), "problem" if embedder is None
                                        else "dataset")
            if found["ci_low"] is None:
                messages.append(f"{embedder or 'all embedders'} / {pool}: one {found['unit']}, no interval")
            rows.append({"embedder": embedder or "all embedders", "initial_pool": pool, "metric": metric,
                         "gain": found["mean"], "ci_low": found["ci_low"], "ci_high": found["ci_high"],
                         "units": found["n"], "unit": found["unit"]})
    return pd.DataFrame(rows), messages


def build(context) -> Section:
    from matplotlib.figure import Figure

    data = context.data
    done = data.done
    pools = [p for p in data.initial_pools if p != RANDOM]
    if not pools:
        return Section(NAME, TITLE, notes([("the grid has one initial pool: add a diversity pool "
                                                      "(e.g. typiclust) next to random to compare them")]), {})
    if RANDOM not in data.initial_pools:
        return Section(NAME, TITLE, notes([("the grid has no random initial pool to compare the "
                                                      "others against")]), {})
    metrics = {k.format(context.metric): v for k, v in METRICS.items()}
    if done.empty or f"early_auc_{context.metric}" not in done:
        return Section(NAME, TITLE, notes(["no complete cell yet"]), {})
    frames, messages = [], []
    for metric in metrics:
        frame, found = pool_gains(done, metric)
        frames.append(frame)
        messages.extend(m for m in found if m not in messages)
    result = pd.concat(frames, ignore_index=True) if any(len(f) for f in frames) else pd.DataFrame()
    html = ""
    if not result.empty:
        embedders = [e for e in [*data.embedders, "all embedders"] if e in set(result["embedder"])]
        series = [(p, m) for p in pools for m in metrics if ((result["initial_pool"] == p)
                                                             & (result["metric"] == m)).any()]
        figure = Figure(figsize=(1.5 + 1.4 * len(embedders) * max(1, len(series)) / 2, 3.4))
        ax = figure.subplots()
        width = 0.8 / max(1, len(series))
        for s, (pool, metric) in enumerate(series):
            part = result[(result["initial_pool"] == pool) & (result["metric"] == metric)].set_index("embedder")
            part = part.reindex(embedders)
            x = np.arange(len(embedders)) - 0.4 + width * (s + 0.5)
            mean = part["gain"].to_numpy(dtype=float)
            low = part["ci_low"].to_numpy(dtype=float)
            high = part["ci_high"].to_numpy(dtype=float)
            ok = np.isfinite(low) & np.isfinite(high)
            err = np.vstack([np.where(ok, mean - low, 0), np.where(ok, high - mean, 0)])
            ax.bar(x, np.nan_to_num(mean), width, yerr=err, capsize=3, label=f"{pool}: {metrics[metric]}",
                   hatch="//" if metric.startswith("early") else None, alpha=0.85)
        ax.axhline(0, color="#555", linewidth=1)
        ax.set_xticks(range(len(embedders)), embedders, fontsize=8)
        ax.set_ylabel(f"pool minus random pool ({context.metric} AUC)\n95 % t-interval (unit: a dataset; all embedders: a problem)", fontsize=7)
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        html = context.figures.save(figure, "initial_pool", "Diversity initial pools against the random pool")
    body = (words(
        "Each diversity initial pool against the random initial pool: the same dataset, query strategy "
        "and seed, only the initial pool differs, so each pair is a paired difference. Shown per "
        f"embedder, in early AUC (first {data.early_points} points: where the initial pool matters most) "
        f"and full AUC of {context.metric}: the mean difference, with a 95 % t-interval whose unit is "
        f"{UNIT}. Both initial pools appear here; the other sections show the pool "
        f"<b>{data.main_pool}</b>.")
        + notes(messages) + html + table(result, digits=4))
    return Section(NAME, TITLE, body, {"gains": result, "messages": messages, "unit": UNIT,
                                       "initial_pool": [RANDOM, *pools],
                                                "compared_to": RANDOM, "pools": pools})


