"""The AUC family per trial (full, early, late AUC, final accuracy and macro-F1) and the gain
over random, paired by seed (the same seed shares its initial pool), with t intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestrator.report.context import across_problems
from orchestrator.report.page import Section, esc, notes, table, words
from orchestrator.results import PROBLEM

NAME = "auc"
AFTER = "curves"
TITLE = "AUC family and gain over random"
FAMILY = ("auc_accuracy", "early_auc_accuracy", "late_auc_accuracy", "final_accuracy", "auc_macro_f1",
          "final_macro_f1")
GAINS = {"auc_{}": "full AUC", "early_auc_{}": "early AUC", "final_{}": "final {}"}


def build(context) -> Section:
    from matplotlib.figure import Figure

    data = context.data
    main = data.main()
    if main.empty:
        return Section(NAME, TITLE, notes(["no complete cell yet"]), {})
    present = [m for m in FAMILY if m in main]
    per_problem = main.groupby([*PROBLEM, "strategy"], sort=False)[present].mean()  # seeds averaged
    family = per_problem.groupby("strategy", sort=False).mean().reindex(
        [s for s in data.strategies if s in per_problem.index.get_level_values("strategy")]).reset_index()
    family.insert(1, "problems", per_problem.groupby("strategy").size().reindex(family["strategy"]).to_numpy())
    summaries, detail, messages, gain_stats = {}, [], [], {}
    for name, label in GAINS.items():
        metric, label = name.format(context.metric), label.format(context.metric.replace("_", "-"))
        if metric not in main:
            continue
        gains = context.gains(metric)
        messages.extend(m for m in gains.messages if m not in messages)
        summaries[label] = across_problems(gains.table)
        gain_stats[metric] = {"per_problem": gains.table, "across_problems": summaries[label],
                              "messages": gains.messages}
        if metric == context.auc:
            detail = gains.table
    full = summaries.get("full AUC", pd.DataFrame())
    figure_html = ""
    if not full.empty:
        strategies = list(full["strategy"])
        figure = Figure(figsize=(6.5, 0.5 + 0.45 * len(strategies) * max(1, len(summaries))))
        ax = figure.subplots()
        offsets = np.linspace(-0.2, 0.2, len(summaries)) if len(summaries) > 1 else [0.0]
        for (label, summary), offset, marker in zip(summaries.items(), offsets, "osD"):
            summary = summary.set_index("strategy").reindex(strategies)
            y = np.arange(len(strategies)) + offset
            mean = summary["mean_gain"].to_numpy(dtype=float)
            low = summary["ci_low"].to_numpy(dtype=float)
            high = summary["ci_high"].to_numpy(dtype=float)
            has_ci = np.isfinite(low) & np.isfinite(high)
            err = np.vstack([np.where(has_ci, mean - low, 0), np.where(has_ci, high - mean, 0)])
            ax.errorbar(mean, y, xerr=err, fmt=marker, capsize=3, label=label)
        ax.axvline(0, color="#555", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(strategies)), strategies)
        ax.invert_yaxis()
        ax.set_xlabel(f"gain over random ({context.metric}, 0-1), mean over problems, 95 % t-interval "
                      "(unit: a problem)")
        ax.legend(fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        figure.tight_layout()
        figure_html = context.figures.save(figure, "gain_over_random", "Gain over random per strategy")
    shown = full.rename(columns={"mean_gain": "gain (full AUC)"}) if not full.empty else full
    body = (words(
        "Per trial, from its curve: the <b>full AUC</b> (area under accuracy against labelled examples, "
        "divided by the x-range), the <b>early AUC</b> (the first "
        f"{data.early_points} points of the curve, <code>report.early_cycles</code>), the <b>late AUC</b> "
        "(the last as many points), the final accuracy and macro-F1. The <b>gain over random</b> of a "
        "strategy is its metric minus random's on the same problem, initial pool and seed (paired: "
        "the same seed shares the initial pool), averaged over seeds. Intervals are 95 % t-intervals: "
        "per problem over its seeds (the unit: a seed), and over problems for the mean below (the unit: "
        f"a problem, seeds averaged first). 'above 0' counts problems whose seed interval lies above zero. "
        f"Ranked by <code>report.metric</code> = {esc(context.metric)}; initial pool "
        f"<b>{esc(data.main_pool)}</b> only.")
        + notes(messages) + figure_html
        + table(family, digits=4, caption="AUC family, mean over problems (seeds averaged first)")
        + table(shown, digits=4, caption=f"gain over random in full AUC of {context.metric}")
        + (f"<details><summary>gain per problem ({esc(len(detail))} rows)</summary>"
           + table(detail, digits=4) + "</details>" if len(detail) else ""))
    return Section(NAME, TITLE, body, {"early_points": data.early_points, "family": family,
                                       "initial_pool": data.main_pool, "metric": context.metric,
                                       "gains": gain_stats, "messages": messages})
