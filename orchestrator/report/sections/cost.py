"""Cost: each strategy's query seconds per trial (its queries only, the initial pool's
selection left out) against its mean gain over random."""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.report.context import across_problems
from orchestrator.report.page import Section, notes, table, words

NAME = "cost"
AFTER = "quality"
TITLE = "Cost"


def build(context) -> Section:
    from matplotlib.figure import Figure

    main = context.data.main()
    if main.empty or "strategy_query_seconds" not in main:
        return Section(NAME, TITLE, notes(["no complete cell with its per-cycle query times yet"]), {})
    columns = [c for c in ("strategy_query_seconds", "total_fit_seconds", "initial_pool_seconds") if c in main]
    cost = main.groupby("strategy", sort=False)[columns].agg(["mean", "median"])
    cost.columns = [f"{a} ({b})" for a, b in cost.columns]
    cost = cost.reindex([s for s in context.data.strategies if s in cost.index])
    gains = across_problems(context.gains().table).set_index("strategy")
    cost["gain (full AUC)"] = gains["mean_gain"].reindex(cost.index) if len(gains) else np.nan
    cost = cost.reset_index()
    figure = Figure(figsize=(6.0, 4.0))
    ax = figure.subplots()
    seconds = cost["strategy_query_seconds (mean)"].to_numpy(dtype=float)
    gain = cost["gain (full AUC)"].to_numpy(dtype=float)
    for name, x, y in zip(cost["strategy"], seconds, gain):
        y = 0.0 if name == "random" else y
        if not np.isfinite(y):
            continue
        ax.scatter([max(x, 1e-6)], [y], color=context.colors.get(name), s=40)
        ax.annotate(name, (max(x, 1e-6), y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.axhline(0, color="#555", linestyle="--", linewidth=1)
    ax.set_xlabel("query seconds per trial (mean, log scale)", fontsize=8)
    ax.set_ylabel("mean gain over random (full AUC)", fontsize=8)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    html = context.figures.save(figure, "cost", "Query seconds per trial against gain over random")
    body = (words("From each trial's per-cycle <code>query_seconds</code>: the seconds its strategy spent "
                  "choosing rows over all query cycles (the initial pool's selection, cycle 0, is counted "
                  "apart), and the learner's <code>fit_seconds</code>, per trial; wall-clock times on the "
                  "workers, so they depend on the machine and its load. Random's gain is 0 by definition. "
                  f"Trials of the initial pool <b>{context.data.main_pool}</b>; gain in full AUC of "
                  f"{context.metric}.")
            + html + table(pd.DataFrame(cost), digits=4))
    return Section(NAME, TITLE, body, {"cost": cost, "initial_pool": context.data.main_pool})
