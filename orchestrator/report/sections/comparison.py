"""3. Strategy comparison across problems: average ranks, Friedman, pairwise Wilcoxon signed-rank
with Holm correction drawn as a critical-difference diagram, and a win/tie/loss matrix.

The sample is a problem (dataset x embedder) with seeds averaged: seeds of one problem share its
data and its embedding, so they are not independent draws of how a strategy does on a new
problem, and counting them as samples would make small differences look significant (Demsar
2006; Benavoli, Corani and Mangili 2016, who also explain why pairwise Wilcoxon tests and not
the Nemenyi test on mean ranks).
"""

from __future__ import annotations

import pandas as pd

from orchestrator.report import stats
from orchestrator.report.context import ALPHA
from orchestrator.report.page import Section, esc, notes, table, words

ORDER = 3
TITLE = "3. Strategy comparison"
METRIC = "auc_accuracy"
SAMPLE_UNIT = ("a problem = dataset x embedder, with the seeds of each problem averaged first: the seeds "
               "of a problem share its data and embedding, so they are not independent samples of how "
               "a strategy does on a new problem (Demsar 2006; Benavoli, Corani and Mangili 2016)")


def cliques(ranks: dict[str, float], pairwise: dict[str, dict[str, float]], alpha: float = ALPHA) -> list[list[str]]:
    """Maximal runs of strategies, in rank order, no two of which differ significantly (the bars
    of a critical-difference diagram)."""
    order = sorted(ranks, key=ranks.get)
    found: list[tuple[int, int]] = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and all(pairwise[order[a]].get(order[j + 1], 1.0) >= alpha
                                         for a in range(i, j + 1)):
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in found):
            found.append((i, j))
    return [order[a:b + 1] for a, b in found]


def cd_diagram(ranks: dict[str, float], groups: list[list[str]], title: str):
    """A critical-difference diagram: strategies on the average-rank axis (1 = best, left),
    a bar joining each group that no pairwise Wilcoxon-Holm test separates."""
    from matplotlib.figure import Figure

    order = sorted(ranks, key=ranks.get)
    k = len(order)
    half = (k + 1) // 2
    height = 1.2 + 0.3 * max(half, k - half) + 0.18 * len(groups)
    figure = Figure(figsize=(7, height))
    ax = figure.subplots()
    low, high = 1, max(k, 2)
    ax.set_xlim(low - 0.5, high + 0.5)
    ax.set_ylim(-(max(half, k - half) + 1) * 0.3 - 0.2 * len(groups), 0.5)
    ax.axis("off")
    ax.hlines(0, low, high, color="black", linewidth=1)
    for r in range(low, high + 1):
        ax.vlines(r, 0, 0.08, color="black", linewidth=1)
        ax.text(r, 0.14, str(r), ha="center", va="bottom", fontsize=8)
    for i, name in enumerate(order):
        left = i < half
        level = -(i + 1 if left else k - i) * 0.3
        x_text = low - 0.4 if left else high + 0.4
        ax.plot([ranks[name], ranks[name], x_text], [0, level, level], color="black", linewidth=0.8)
        ax.text(x_text, level, f"{name} ({ranks[name]:.2f})", ha="right" if left else "left",
                va="center", fontsize=8)
    for g, group in enumerate(groups):
        y = -0.12 - 0.12 * g
        ax.plot([ranks[group[0]] - 0.03, ranks[group[-1]] + 0.03], [y, y], color="#d62728", linewidth=3)
    ax.set_title(title, fontsize=9)
    figure.subplots_adjust(left=0.22, right=0.78)
    return figure


def _compare(scores: pd.DataFrame, tie_threshold: float, label: str, context, messages: list[str]):
    """One comparison: its stats, its figure HTML and tables."""
    if scores.shape[1] < 2:
        messages.append(f"{label}: fewer than two strategies with complete cells")
        return None, ""
    if len(scores) == 0:
        messages.append(f"{label}: no problem where every strategy has a complete cell")
        return None, ""
    result = stats.compare(scores, alpha=ALPHA, tie_threshold=tie_threshold)
    messages.extend(f"{label}: {m}" for m in result.messages)
    groups = cliques(result.ranks, result.pairwise_p)
    html = context.figures.save(cd_diagram(result.ranks, groups, f"{label}: average rank over {len(scores)} "
                                           "problems (1 = best); bars: no significant difference"),
                                f"cd_{label}", f"Critical-difference diagram, {label}")
    order = sorted(result.ranks, key=result.ranks.get)
    ranks = pd.DataFrame({"strategy": order, "average rank": [result.ranks[s] for s in order],
                          f"mean {METRIC}": [float(scores[s].mean()) for s in order]})
    wtl = pd.DataFrame([[("" if a == b else "{}/{}/{}".format(*result.win_tie_loss[a][b])) for b in order]
                        for a in order], columns=order)
    wtl.insert(0, "row vs column (win/tie/loss)", order)
    if result.friedman is not None:
        f = result.friedman
        verdict = ("the strategies differ" if f["p"] < ALPHA else "no evidence that the strategies differ")
        summary = (f"Friedman chi-square {f['statistic']:.2f} over {f['n']} problems and {f['k']} strategies, "
                   f"p = {f['p']:.3g}: {verdict} (alpha {ALPHA}).")
    else:
        summary = "Friedman test not run (see the note)."
    significant = [f"{a} vs {b} (p = {result.pairwise_p[a][b]:.3g})" for i, a in enumerate(order)
                   for b in order[i + 1:] if result.pairwise_p[a][b] < ALPHA]
    summary += (" Pairs that differ after Holm: " + ", ".join(significant) + "." if significant
                else " No pair differs after Holm's correction.")
    body = (f"<h3>{esc(label)}</h3>" + words(esc(summary)) + html + table(ranks, digits=3)
            + table(wtl, caption="win/tie/loss over problems, row strategy against column strategy"))
    out = {"problems": list(map(list, scores.index)), "scores": scores.reset_index(), "ranks": result.ranks,
           "friedman": result.friedman, "pairwise_holm_p": result.pairwise_p,
           "win_tie_loss": result.win_tie_loss, "cliques": groups, "n_problems": result.n_problems,
           "messages": result.messages}
    return out, body


def build(context) -> Section:
    data = context.data
    main = data.main()
    if main.empty or METRIC not in main:
        return Section("comparison", TITLE, notes(["no complete cell yet"]), {})
    tie = context.config.report.tie_threshold
    messages: list[str] = []
    out, parts = {}, []
    everything = stats.problem_scores(main, METRIC)
    dropped = _dropped(main, everything)
    if dropped:
        messages.append(f"{len(dropped)} problems left out of the comparison (a strategy has no complete "
                        f"cell there): {', '.join(dropped[:10])}" + (" ..." if len(dropped) > 10 else ""))
    result, body = _compare(everything, tie, "all embedders", context, messages)
    if result is not None:
        out["all embedders"] = result
        parts.append(body)
    for embedder in data.embedders:
        scores = everything[everything.index.get_level_values("embedder") == embedder]
        if len(data.embedders) == 1:
            break
        result, body = _compare(scores, tie, f"embedder {embedder}", context, messages)
        if result is not None:
            out[f"embedder {embedder}"] = result
            parts.append(body)
    text = words(
        f"The sample unit is {esc(SAMPLE_UNIT)}. Strategies are ranked on each problem by full AUC "
        f"({esc(METRIC)}, from the initial pool {esc(data.main_pool)}; 1 = best, ties averaged). The Friedman "
        "test asks whether any strategy differs; pairwise Wilcoxon signed-rank tests over problems, "
        "Holm-corrected, say which pairs do (the bars join strategies no test separates). A pair is "
        f"a <b>tie</b> on every problem when its Holm-adjusted p is not below {ALPHA} or its mean "
        f"difference is below the practical threshold <code>report.tie_threshold</code> = {tie}; "
        "otherwise each problem counts as a win or a loss by the sign of its difference. First across "
        "all embedders, then per embedder across datasets.")
    return Section("comparison", TITLE, text + notes(messages) + "".join(parts),
                   {"metric": METRIC, "sample_unit": SAMPLE_UNIT, "alpha": ALPHA, "tie_threshold": tie,
                    "comparisons": out, "messages": messages})


def _dropped(main: pd.DataFrame, scores: pd.DataFrame) -> list[str]:
    problems = main[["dataset", "embedder"]].drop_duplicates()
    kept = set(map(tuple, scores.index)) if len(scores) else set()
    return [f"{d}/{e}" for d, e in problems.itertuples(index=False) if (d, e) not in kept]

