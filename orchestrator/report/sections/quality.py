"""Embedding quality and AL gain: for each quality measure (headroom-scaled accuracy of the
grid's learner, the few-labels probe, the label-free RankMe and alpha-ReQ, a user score), the
correlation with each strategy's gain over random *within datasets* (each dataset's mean removed
first: dataset difficulty would otherwise drive it), with Fisher's z interval, and the scatter.

The measures are computed by ``orchestrator.report.quality`` (cached in ``quality.json``).
"""

from __future__ import annotations

import pandas as pd

from orchestrator.report import stats
from orchestrator.report.page import Section, notes, table, words

NAME = "quality"
AFTER = "initial-pool"
TITLE = "Embedding quality and AL gain"
MEASURES = {"quality": "headroom-scaled accuracy", "few_shot": "few-labels probe", "rankme": "RankMe",
            "alpha_req": "alpha-ReQ", "user_quality": "report.embedder_quality"}


def correlations(gains: pd.DataFrame, quality: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per strategy: the within-dataset correlation of ``quality[column]`` with the gain."""
    joined = gains.merge(quality, on=["dataset", "embedder"], how="inner")
    rows = []
    for strategy, group in joined.groupby("strategy", sort=False):
        found = stats.within_correlation(group[column], group["gain"], group["dataset"])
        rows.append({"measure": MEASURES.get(column, column), "strategy": strategy, "r within datasets": found["r"],
                     "ci_low": found["ci_low"], "ci_high": found["ci_high"], "p": found["p"],
                     "problems": found["n"], "datasets": found["groups"], "note": found["message"]})
    return pd.DataFrame(rows)


def build(context) -> Section:
    from matplotlib.figure import Figure

    gains = context.gains()
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
    columns = [c for c in MEASURES if c in quality]
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
        messages.extend(sorted({n for n in result["note"] if n}))
        result = result.drop(columns="note")
    html = ""
    measured = quality.dropna(subset=["quality"]) if "quality" in quality else quality.iloc[0:0]
    if not gains.table.empty and len(measured):
        joined = gains.table.merge(measured, on=["dataset", "embedder"])
        for column in ("quality", "gain"):  # within datasets: each dataset's mean removed, as the r
            joined[column] = joined[column] - joined.groupby(["dataset", "strategy"])[column].transform("mean")
        figure = Figure(figsize=(6.2, 4.2))
        ax = figure.subplots()
        for strategy, group in joined.groupby("strategy", sort=False):
            ax.scatter(group["quality"], group["gain"], label=strategy, color=context.colors.get(strategy),
                       s=24, alpha=0.85)
        ax.axhline(0, color="#555", linestyle="--", linewidth=1)
        ax.set_xlabel("headroom-scaled quality minus its dataset's mean", fontsize=8)
        ax.set_ylabel("gain over random (full AUC) minus its dataset's mean", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        figure.tight_layout()
        html = context.figures.save(figure, "quality_vs_gain", "Embedding quality against gain over random, "
                                    "within datasets")
    shown_quality = quality[[c for c in ("dataset", "embedder", "quality", "accuracy", "majority",
                                         "rank_in_dataset", "few_shot", "rankme", "alpha_req", "user_quality",
                                         "train_rows", "test_rows") if c in quality]]
    body = (words(
        "albench measures each (dataset, embedder) several ways (cached in <code>quality.json</code>): the "
        "grid's learner trained on the whole labelled pool, its test accuracy scaled by the headroom above "
        "the majority-class rate (<b>quality</b> = (accuracy - majority) / (1 - majority), so datasets of "
        "different difficulty share one scale; not a bound on what a strategy reaches), the embedder's rank "
        "within its dataset, an MTEB-style <b>few-labels probe</b> (the same learner on 8 labelled rows per "
        "class, mean test accuracy over 10 draws), and two measures that need no labels: <b>RankMe</b> "
        "(effective rank of the embeddings) and <b>alpha-ReQ</b> (decay of their eigenvalues). "
        + ("The config's <code>report.embedder_quality</code> is used too. " if user else
           "A score per embedder (e.g. an MTEB average) can be given in <code>report.embedder_quality</code>. ")
        + "For each measure and strategy: Pearson's r between the measure and the gain over random (full AUC "
        f"of {context.metric}, initial pool {context.data.main_pool}) <b>within datasets</b> (each dataset's "
        "mean of both removed first), with a 95 % Fisher-z interval for a partial correlation (the unit: a "
        "problem; standard error 1/sqrt(problems - datasets - 2)). A measure whose interval excludes 0 "
        "tracks AL gain on this grid's data; with few problems most intervals span nearly [-1, 1].")
        + notes(messages) + html + table(result, digits=3, caption="quality measure against gain, within datasets")
        + table(shown_quality, digits=4, caption="quality per problem"))
    return Section(NAME, TITLE, body, {"quality": shown_quality, "correlations": result, "messages": messages,
                                       "user_quality": user, "initial_pool": context.data.main_pool})
