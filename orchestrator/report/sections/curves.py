"""Learning curves per (dataset, embedder): the mean of ``report.metric`` over seeds with a 95 %
band, one line per strategy, random dashed; one interactive figure per panel in the page, the
same panels as a static grid in figures/ (offered as downloads, not drawn twice)."""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.report.curve_band import ALPHA, draw, t_band
from orchestrator.report.data import RANDOM
from orchestrator.report.page import Section, esc, notes, plotly_div, table, words

NAME = "curves"
AFTER = "status"
TITLE = "Learning curves"


def mean_band(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per step: mean over seeds, and the 95 % t-interval of the mean (None with one seed)."""
    grouped = curves.groupby("step")[metric]
    out = pd.DataFrame({"mean": grouped.mean(), "sd": grouped.std(ddof=1), "n": grouped.count()})
    out["low"], out["high"] = t_band(out["mean"], out["sd"], out["n"])  # clipped to [0, 1]
    return out.reset_index()


def build(context) -> Section:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    data, colors, metric = context.data, context.colors, context.metric
    label = metric.replace("_", "-")
    main = data.main()
    if main.empty:
        return Section(NAME, TITLE, notes(["no complete cell to draw yet"]), {"curves": []})
    curves = data.curves[data.curves["trial_key"].isin(set(main["trial_key"]))]
    problems = [(d, e) for d in data.datasets for e in data.embedders
                if ((curves["dataset"] == d) & (curves["embedder"] == e)).any()]
    divs, finals, stats_out, messages = [], [], [], []
    cols = min(3, len(problems))
    rows = math.ceil(len(problems) / cols)
    static = Figure(figsize=(4.2 * cols, 3.0 * rows + 0.6))
    axes = static.subplots(rows, cols, squeeze=False)
    for index, (dataset, embedder) in enumerate(problems):
        sub = curves[(curves["dataset"] == dataset) & (curves["embedder"] == embedder)]
        figure = go.Figure()
        ax = axes[index // cols][index % cols]
        for strategy in data.strategies:
            part = sub[sub["strategy"] == strategy]
            if part.empty:
                continue
            band = mean_band(part, metric)
            color = colors.get(strategy, "#000000")
            dash = "dash" if strategy == RANDOM else "solid"
            x = band["step"].tolist()
            if band["low"].notna().all():
                figure.add_trace(go.Scatter(
                    x=x + x[::-1], y=band["high"].tolist() + band["low"].tolist()[::-1], fill="toself", mode="lines",
                    fillcolor=_rgba(color, ALPHA), line={"width": 0}, hoverinfo="skip", showlegend=False,
                    legendgroup=strategy, name=f"{strategy} 95% band"))
            figure.add_trace(go.Scatter(
                x=x, y=band["mean"].tolist(), mode="lines+markers", name=strategy, legendgroup=strategy,
                line={"color": color, "dash": dash, "width": 2}, marker={"size": 4},
                hovertemplate=f"{esc(strategy)}<br>%{{x}} labelled<br>{label} %{{y:.4f}}<extra></extra>"))
            draw(ax, x, band["mean"], band["low"], band["high"], color=color,
                 linestyle="--" if strategy == RANDOM else "-", label=strategy)
            finals.append({"dataset": dataset, "embedder": embedder, "strategy": strategy,
                           "final": float(band["mean"].iloc[-1]), "seeds": int(band["n"].iloc[-1])})
            stats_out.append({"dataset": dataset, "embedder": embedder, "strategy": strategy,
                              "steps": x, "mean": band["mean"].tolist(), "low": band["low"].tolist(),
                              "high": band["high"].tolist(), "n": band["n"].tolist()})
        figure.update_layout(xaxis_title="labelled examples", yaxis_title=f"test {label}", height=400,
                             margin={"l": 50, "r": 10, "t": 30, "b": 40}, template="plotly_white",
                             legend={"font": {"size": 10}, "orientation": "h", "y": -0.25})
        divs.append(plotly_div(figure, f"{dataset} / {embedder}"))
        ax.set_title(f"{dataset} / {embedder}", fontsize=9)
        ax.set_xlabel("labelled examples", fontsize=8)
        ax.set_ylabel(f"test {label}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        left = data.incomplete()
        left = left[(left["dataset"] == dataset) & (left["embedder"] == embedder)
                    & (left["initial_pool"] == data.main_pool)]
        for _, cell in left.iterrows():
            messages.append(f"{dataset} / {embedder}: {cell['strategy']} not drawn (incomplete: "
                            f"{cell['finished']} of {cell['expected']} seeds finished)")
    for index in range(len(problems), rows * cols):
        axes[index // cols][index % cols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    static.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8, frameon=False)
    static.tight_layout(rect=(0, 0.05 if rows > 1 else 0.1, 1, 1))
    one_seed = len(data.seeds) == 1
    if one_seed:
        messages.append("one seed: the curves have no confidence band")
    final_table = pd.DataFrame(finals)
    if not final_table.empty:
        final_table = final_table.pivot_table(index=["dataset", "embedder"], columns="strategy",
                                              values="final").reset_index()
        final_table.columns.name = None
    body = (words(
        f"Mean test {esc(label)} (<code>report.metric</code>) over the {len(data.seeds)} seeds against the "
        f"number of labelled examples, from the initial pool <b>{esc(data.main_pool)}</b> (the other initial "
        "pools' curves are in <code>curves.parquet</code>; the section Initial pool compares the pools). "
        "The band is the 95 % t-interval of the mean over seeds (the unit: a seed; clipped to [0, 1]; with "
        "few seeds it is wide, as it should be). Random is dashed. Hover for values; a click on a strategy "
        "in any legend hides or shows it in every panel.")
        + notes(messages) + '<div class="grid">' + "".join(divs) + "</div>"
        + context.figures.save_files(static, "learning_curves", "The same panels")
        + table(final_table, caption=f"final {label} (mean over seeds), initial pool {data.main_pool}"))
    return Section(NAME, TITLE, body, {"metric": metric, "band": "95% t-interval of the mean over seeds",
                                          "initial_pool": data.main_pool, "curves": stats_out,
                                          "messages": messages})


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
