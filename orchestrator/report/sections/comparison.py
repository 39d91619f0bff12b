"""Strategy comparison across problems: average ranks, Friedman, pairwise Wilcoxon signed-rank
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

NAME = "comparison"
AFTER = "auc"
TITLE = "Strategy comparison"
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


def _compare(result: stats.Comparison, scores: pd.DataFrame, label: str, context) -> tuple[dict, str]:
    """One comparison's statistics for stats.json and its HTML (figure, power, tables)."""
    groups = cliques(result.ranks, result.pairwise_p)
    html = context.figures.save(cd_diagram(result.ranks, groups, f"{label}: average rank over {len(scores)} "
                                           "problems (1 = best); bars: no significant difference"),
                                f"cd_{label}", f"Critical-difference diagram, {label}")
    order = sorted(result.ranks, key=result.ranks.get)
    ranks = pd.DataFrame({"strategy": order, "average rank": [result.ranks[s] for s in order],
                          f"mean {context.auc}": [float(scores[s].mean()) for s in order]})
    reach = result.power
    if reach["can_reach_alpha"]:
        counts, caption = result.win_tie_loss, ("win/tie/loss over problems, row strategy against column "
                                                 "strategy (a tie: no Holm-adjusted difference)")
    else:  # a win/tie/loss table would read all ties by construction: the counts, said to be no test
        counts, caption = result.better_on, ("row strategy better / equal / worse than column strategy on how "
                                              "many problems: counts, not a test (no test can separate a pair here)")
    wtl = pd.DataFrame([[("" if a == b else "{}/{}/{}".format(*counts[a][b])) for b in order] for a in order],
                       columns=order)
    wtl.insert(0, "row vs column", order)
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
    power_note = f'<p class="{"small" if reach["can_reach_alpha"] else "note"}">Power: {esc(stats.power_words(reach))}</p>'
    body = (f"<h3>{esc(label)}</h3>" + words(esc(summary)) + power_note + html + table(ranks, digits=3)
            + table(wtl, caption=caption))
    out = {"problems": list(map(list, scores.index)), "scores": scores.reset_index(), "ranks": result.ranks,
           "friedman": result.friedman, "pairwise_holm_p": result.pairwise_p, "power": reach,
           "win_tie_loss": result.win_tie_loss, "better_on": result.better_on, "cliques": groups,
           "n_problems": result.n_problems, "messages": result.messages}
    return out, body


def build(context) -> Section:
    data = context.data
    main = data.main()
    if main.empty or context.auc not in main:
        return Section(NAME, TITLE, notes(["no complete cell yet"]), {})
    tie = context.config.report.tie_threshold
    messages: list[str] = []
    out, parts = {}, []
    found = context.comparisons()
    dropped = _dropped(main, stats.problem_scores(main, context.auc))
    if dropped:
        messages.append(f"{len(dropped)} problems left out of the comparison (a strategy has no complete "
                        f"cell there): {', '.join(dropped[:10])}" + (" ..." if len(dropped) > 10 else ""))
    if not found:
        messages.append("fewer than two strategies with complete cells on a common problem: nothing to compare")
    for label, (result, scores) in found.items():
        messages.extend(f"{label}: {m}" for m in result.messages
                        if m != stats.power_words(result.power))  # said under its own table
        out[label], body = _compare(result, scores, label, context)
        parts.append(body)
    text = words(
        f"The sample unit is {esc(SAMPLE_UNIT)}. Strategies are ranked on each problem by full AUC "
        f"({esc(context.auc)}, <code>report.metric</code>; from the initial pool <b>{esc(data.main_pool)}</b>; "
        "1 = best, ties averaged). The Friedman "
        "test asks whether any strategy differs; pairwise Wilcoxon signed-rank tests over problems, "
        "Holm-corrected, say which pairs do (the bars join strategies no test separates). Each table "
        "states its power: the smallest Holm-adjusted p it can reach. A pair is "
        f"a <b>tie</b> on every problem when its Holm-adjusted p is not below {ALPHA} or its mean "
        f"difference is below the practical threshold <code>report.tie_threshold</code> = {tie}; "
        "otherwise each problem counts as a win or a loss by the sign of its difference. First across "
        "all embedders, then per embedder across datasets.")
    return Section(NAME, TITLE, text + notes(messages) + "".join(parts),
                   {"metric": context.auc, "initial_pool": data.main_pool, "sample_unit": SAMPLE_UNIT,
                    "alpha": ALPHA, "tie_threshold": tie, "comparisons": out, "messages": messages})


def _dropped(main: pd.DataFrame, scores: pd.DataFrame) -> list[str]:
    problems = main[["dataset", "embedder"]].drop_duplicates()
    kept = set(map(tuple, scores.index)) if len(scores) else set()
    return [f"{d}/{e}" for d, e in problems.itertuples(index=False) if (d, e) not in kept]
