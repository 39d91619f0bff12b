"""6. Embedding quality against AL gain: Spearman's rho between each problem's quality and each
strategy's gain over random there, with a bootstrap CI, and the scatter plot.

Quality is measured by albench (``orchestrator.report.quality``: the grid's learner on the whole
pool, accuracy on the test split) and, when the config gives ``report.embedder_quality`` (e.g. an
MTEB average per embedder), also against that score.
"""

from __future__ import annotations

import pandas as pd

from orchestrator.report import stats
from orchestrator.report.page import Section, notes, table, words

ORDER = 6
TITLE = "6. Embedding quality and AL gain"


def correlations(gains: pd.DataFrame, quality: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per strategy: Spearman's rho of ``quality[column]`` against the gain, over problems."""
    joined = gains.merge(quality, on=["dataset", "embedder"], how="inner")
    rows = []
    for strategy, group in joined.groupby("strategy", sort=False):
        found = stats.spearman_ci(group[column].to_numpy(), group["gain"].to_numpy())
        rows.append({"strategy": strategy, "quality": column, "rho": found["rho"],
                     "ci_low": found["ci"][0] if found["ci"] else None,
                     "ci_high": found["ci"][1] if found["ci"] else None, "problems": found["n"],
                     "message": found["message"]})
    return pd.DataFrame(rows)


def build(context) -> Section:
    from matplotlib.figure import Figure

    gains = context.gains("auc_accuracy")
    messages = list(context.quality_messages)
    quality = context.quality.copy()
    user = dict(context.config.report.embedder_quality or {})
    unknown = sorted(set(user) - set(context.data.embedders))
    if unknown:
        messages.append(f"report.embedder_quality names embedders not in the grid: {', '.join(unknown)}")
    problems = gains.table[["dataset", "embedder"]].drop_duplicates() if not gains.table.empty else \
        pd.DataFrame(columns=["dataset", "embedder"])
    if quality.empty:
        quality = problems.assign(quality=float("nan"))
    if user:
        quality = quality.merge(problems, on=["dataset", "embedder"], how="outer")
        quality["user_quality"] = quality["embedder"].map(user)
    columns = ["quality"] + (["user_quality"] if user else [])
    found = []
    if gains.table.empty:
        messages.extend(gains.messages)
    else:
        for column in columns:
            usable = quality.dropna(subset=[column])
            if len(usable):
                found.append(correlations(gains.table, usable, column))
    result = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
    if not result.empty:
        messages.extend(f"{r.strategy} ({r.quality}): {r.message}" for r in result.itertuples() if r.message)
    html = ""
    measured = quality.dropna(subset=["quality"]) if "quality" in quality else quality.iloc[0:0]
    if not gains.table.empty and len(measured):
        joined = gains.table.merge(measured, on=["dataset", "embedder"])
        figure = Figure(figsize=(6.2, 4.2))
        ax = figure.subplots()
        for strategy, group in joined.groupby("strategy", sort=False):
            ax.scatter(group["quality"], group["gain"], label=strategy, color=context.colors.get(strategy),
                       s=24, alpha=0.85)
        ax.axhline(0, color="#555", linestyle="--", linewidth=1)
        ax.set_xlabel("embedding quality (learner on the whole pool, test accuracy)", fontsize=8)
        ax.set_ylabel("gain over random (full AUC)", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        figure.tight_layout()
        html = context.figures.save(figure, "quality_vs_gain", "Embedding quality against gain over random")
    shown_quality = quality[[c for c in ("dataset", "embedder", "quality", "user_quality", "train_rows",
                                         "test_rows") if c in quality]]
    body = (words(
        "albench measures each (dataset, embedder)'s quality itself: the grid's learner trained on the whole "
        "labelled pool, its accuracy on the test split (an upper bound of what any strategy can reach; "
        "computed once and cached in <code>quality.json</code>). "
        + ("The config's <code>report.embedder_quality</code> is used too. " if user else
           "A score per embedder (e.g. an MTEB average) can be given in <code>report.embedder_quality</code>. ")
        + "For each strategy, Spearman's rho between quality and gain over random across problems, with a "
        "95 % percentile bootstrap CI over problems. Problems mix datasets of different difficulty: "
        "read rho with the scatter.")
        + notes(messages) + html + table(result, digits=3, caption="Spearman's rho, quality against gain")
        + table(shown_quality, digits=4, caption="quality per problem"))
    return Section("quality", TITLE, body, {"quality": shown_quality, "spearman": result, "messages": messages,
                                           "user_quality": user})


