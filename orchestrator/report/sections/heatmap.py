"""Strategy x embedder heatmap of the mean gain over random (full AUC), embedders ordered by
quality (lowest first)."""

from __future__ import annotations

import numpy as np

from orchestrator.report.page import Section, esc, notes, table, words

NAME = "heatmap"
AFTER = "comparison"
TITLE = "Strategy x embedder heatmap"


def build(context) -> Section:
    from matplotlib.figure import Figure

    gains = context.gains()
    if gains.table.empty:
        return Section(NAME, TITLE, notes(gains.messages or ["no gains to show"]), {})
    embedders, by = context.embedder_order()
    strategies = [s for s in context.data.strategies if s in set(gains.table["strategy"])]
    mean = gains.table.groupby(["strategy", "embedder"])["gain"].mean().unstack("embedder")
    mean = mean.reindex(index=strategies, columns=[e for e in embedders if e in mean.columns])
    count = gains.table.groupby(["strategy", "embedder"]).size().unstack("embedder").reindex_like(mean)
    values = mean.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    limit = float(np.abs(finite).max()) if finite.size else 1.0
    limit = limit if limit > 0 else 1.0
    figure = Figure(figsize=(1.6 + 1.1 * values.shape[1], 0.8 + 0.45 * values.shape[0]))
    ax = figure.subplots()
    masked = np.ma.masked_invalid(values)
    import matplotlib

    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#dddddd")
    image = ax.imshow(masked, cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(values.shape[1]), list(mean.columns), rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(values.shape[0]), list(mean.index), fontsize=8)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            ax.text(j, i, f"{v:+.3f}" if np.isfinite(v) else "n/a", ha="center", va="center", fontsize=7,
                    color="white" if np.isfinite(v) and abs(v) > 0.6 * limit else "black")
    figure.colorbar(image, ax=ax).set_label("mean gain over random (full AUC)", fontsize=8)
    ax.set_xlabel(f"embedder (ordered by {by})", fontsize=8)
    figure.tight_layout()
    html = context.figures.save(figure, "heatmap_gain", "Mean gain over random, strategy x embedder")
    shown = mean.reset_index()
    shown.columns.name = None
    body = (words(f"Each cell: the gain over random in full AUC of {esc(context.metric)}, initial pool "
                  f"<b>{esc(context.data.main_pool)}</b>, averaged over the datasets (seeds paired "
                  f"and averaged first). Embedders run from left to right by {esc(by)}, lowest first. "
                  "Blue: better than random; red: worse; grey n/a: no complete pair of cells.")
            + notes(gains.messages) + html + table(shown, digits=4))
    return Section(NAME, TITLE, body, {"ordered_by": by, "initial_pool": context.data.main_pool, "embedders": list(mean.columns),
                                           "mean_gain": mean.reset_index(), "problems": count.reset_index(), "messages": gains.messages})
