"""5. The initial pool: each diversity pool (typiclust, coreset, probcover, ...) against the random
pool, in early and full AUC, per embedder, paired by seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.report import stats
from orchestrator.report.context import N_BOOT
from orchestrator.report.data import RANDOM
from orchestrator.report.page import Section, notes, table, words

ORDER = 5
TITLE = "5. Initial pool"
METRICS = {"early_auc_accuracy": "early AUC", "auc_accuracy": "full AUC"}


def pool_gains(done: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, list[str]]:
    """Per (embedder, pool): ``metric`` of the pool minus the random pool's for the same dataset,
    strategy and seed; the mean, and a bootstrap CI over the (dataset, strategy) pairs with
    their seeds averaged."""
    keys = ["dataset", "embedder", "strategy", "seed"]
    base = done[done["initial_pool"] == RANDOM].set_index(keys)[metric]
    rows, messages = [], []
    for (embedder, pool), group in done[done["initial_pool"] != RANDOM].groupby(["embedder", "initial_pool"],
                                                                                sort=False):
        values = group.set_index(keys)[metric]
        paired = values.index.intersection(base.index)
        if len(paired) == 0:
            messages.append(f"{embedder}/{pool}: no complete random-pool cell with the same dataset, "
                            "strategy and seed")
            continue
        diff = (values.loc[paired] - base.loc[paired])
        units = diff.groupby(level=["dataset", "strategy"]).mean().to_numpy(dtype=np.float64)
        lo, hi = stats.bootstrap_ci(units, n_boot=N_BOOT)
        rows.append({"embedder": embedder, "initial_pool": pool, "metric": metric,
                     "gain": float(diff.mean()), "ci_low": lo if len(units) > 1 else None,
                     "ci_high": hi if len(units) > 1 else None, "units": len(units), "pairs": len(diff)})
    return pd.DataFrame(rows), messages


def build(context) -> Section:
    from matplotlib.figure import Figure

    data = context.data
    done = data.done
    pools = [p for p in data.initial_pools if p != RANDOM]
    if not pools:
        return Section("initial-pool", TITLE, notes([("the grid has one initial pool: add a diversity pool "
                                                      "(e.g. typiclust) next to random to compare them")]), {})
    if RANDOM not in data.initial_pools:
        return Section("initial-pool", TITLE, notes([("the grid has no random initial pool to compare the "
                                                      "others against")]), {})
    if done.empty or "early_auc_accuracy" not in done:
        return Section("initial-pool", TITLE, notes(["no complete cell yet"]), {})
    frames, messages = [], []
    for metric in METRICS:
        frame, found = pool_gains(done, metric)
        frames.append(frame)
        messages.extend(m for m in found if m not in messages)
    result = pd.concat(frames, ignore_index=True) if any(len(f) for f in frames) else pd.DataFrame()
    html = ""
    if not result.empty:
        embedders = [e for e in data.embedders if e in set(result["embedder"])]
        series = [(p, m) for p in pools for m in METRICS if ((result["initial_pool"] == p)
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
            ax.bar(x, np.nan_to_num(mean), width, yerr=err, capsize=3, label=f"{pool}: {METRICS[metric]}",
                   hatch="//" if metric == "early_auc_accuracy" else None, alpha=0.85)
        ax.axhline(0, color="#555", linewidth=1)
        ax.set_xticks(range(len(embedders)), embedders, fontsize=8)
        ax.set_ylabel("pool minus random pool (accuracy AUC)", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        html = context.figures.save(figure, "initial_pool", "Diversity initial pools against the random pool")
    body = (words(
        "Each diversity initial pool against the random initial pool: the same dataset, query strategy "
        "and seed, only the initial pool differs, so each pair is a paired difference. Shown per "
        f"embedder, in early AUC (first {data.early_points} points: where the initial pool matters most) "
        "and full AUC: the mean difference, with a 95 % bootstrap CI over the (dataset, strategy) pairs "
        "(seeds averaged first).")
        + notes(messages) + html + table(result, digits=4))
    return Section("initial-pool", TITLE, body, {"gains": result, "messages": messages,
                                                "compared_to": RANDOM, "pools": pools})


