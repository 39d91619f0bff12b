"""What to use: the answer first, in plain words, from the same statistics as the sections below
(``Context.comparisons``, ``Context.gains``, ``initial_pool.pool_gains``), never its own.

Per embedder and over all of them: the strategy to use (the best average rank), the strategies
no pairwise test separates from it, its gain over random with a 95 % t-interval over problems;
the same headline in the other metric; the initial pool that helps per embedder; and what this
grid can and cannot decide (problems, seeds, power) with what to add to decide more.
"""

from __future__ import annotations

import math

import pandas as pd

from orchestrator.console import plural
from orchestrator.report import stats
from orchestrator.report.context import ALPHA, across_problems
from orchestrator.report.data import RANDOM
from orchestrator.report.page import Section, esc, notes, table, words
from orchestrator.report.sections.initial_pool import pool_gains

NAME = "what-to-use"
AFTER = None
TITLE = "What to use"


def interval(low, high) -> str:
    return "no interval" if low is None or not math.isfinite(low) else f"[{low:+.3f}, {high:+.3f}]"


def verdict(low, high) -> str:
    """What an interval of a difference says, in words."""
    if low is None or not math.isfinite(low):
        return "too few units for an interval"
    if low > 0:
        return "above 0"
    if high < 0:
        return "below 0"
    return "contains 0: no evidence of a difference"


def answers(context, metric: str) -> list[dict]:
    """One answer per scope ("all embedders", "embedder <name>") for ``metric`` (a trial summary)."""
    gains = context.gains(metric).table
    rows = []
    for scope, (result, scores) in context.comparisons(metric).items():
        best = min(result.ranks, key=lambda s: (result.ranks[s], -float(scores[s].mean())))
        tied = [s for s in sorted(result.ranks, key=result.ranks.get)
                if s == best or result.pairwise_p[best].get(s, 1.0) >= ALPHA]
        part = gains if scope == "all embedders" else gains[gains["embedder"] == scope.split(" ", 1)[1]]
        part = part[part.set_index(["dataset", "embedder"]).index.isin(scores.index)]
        gain = across_problems(part).set_index("strategy")
        row = gain.loc[best] if best in gain.index else None
        rows.append({"scope": scope, "metric": metric, "use": best, "average rank": result.ranks[best],
                     "not separated from it": ", ".join(tied), "problems": result.n_problems,
                     "gain over random": 0.0 if best == RANDOM else (row["mean_gain"] if row is not None else None),
                     "ci_low": None if row is None else row["ci_low"], "ci_high": None if row is None else row["ci_high"],
                     "unit": "problem", "strategies": len(result.ranks), "power": result.power})
    return rows


def sentence(answer: dict, label: str) -> str:
    tied = answer["not separated from it"].split(", ")
    others = [s for s in tied if s != answer["use"]]
    if answer["use"] == RANDOM:
        gain = "it is the baseline"
    else:
        gain = (f"its gain over random is {answer['gain over random']:+.3f} "
                f"{interval(answer['ci_low'], answer['ci_high'])} ({verdict(answer['ci_low'], answer['ci_high'])}; "
                f"95 % t-interval over {plural(answer['problems'], 'problem')})")
    separated = ("no test separates it from " + (", ".join(esc(s) for s in others) if others else "none")
                 + (": every strategy of the grid" if len(tied) == answer["strategies"] > 2 else ""))
    return (f"<b>{esc(answer['scope'])}</b>: use <b>{esc(answer['use'])}</b> (best average rank "
            f"{answer['average rank']:.2f} in full AUC of {esc(label)}); {gain}; {separated}.")


def pool_sentences(context) -> tuple[list[str], pd.DataFrame]:
    data = context.data
    pools = [p for p in data.initial_pools if p != RANDOM]
    if not pools or RANDOM not in data.initial_pools or data.done.empty:
        return [f"The grid has one initial pool ({esc(data.main_pool)}): nothing to choose."], pd.DataFrame()
    metric = f"early_auc_{context.metric}"
    if metric not in data.done:
        return ["No complete cell of both initial pools yet."], pd.DataFrame()
    found, _ = pool_gains(data.done, metric)
    said = []
    for row in found.itertuples():
        word = verdict(row.ci_low, row.ci_high)
        helps = {"above 0": f"the {row.initial_pool} pool helps", "below 0": "the random pool helps"}.get(
            word, f"neither pool is shown to help ({word})")
        said.append(f"<b>{esc(row.embedder)}</b>: {esc(helps)}: {row.initial_pool} minus random "
                    f"{row.gain:+.3f} {interval(row.ci_low, row.ci_high)} in early AUC (95 % t-interval over "
                    f"{plural(row.units, row.unit)}).")
    return said, found


def decide(context, main: dict | None) -> str:
    data = context.data
    if main is None:
        return "Nothing can be decided yet: no problem where every strategy has a complete cell."
    reach = main["power"]
    n, k = reach["problems"], len(data.strategies)
    head = (f"This grid has {plural(n, 'problem')} ({plural(len(data.datasets), 'dataset')} x "
            f"{plural(len(data.embedders), 'embedder')}), {plural(len(data.seeds), 'seed')} and "
            f"{plural(k, 'strategy', 'strategies')} ({plural(reach['pairs'], 'pair')}). ")
    if reach["can_reach_alpha"]:
        can = (f"Its pairwise tests can separate strategies (smallest attainable Holm-adjusted p "
               f"{reach['min_adjusted_p']:.3g} < {ALPHA}) when the evidence is strong; ")
    else:
        can = (f"It cannot separate any two strategies: with {reach['pairs']} pairs the smallest Holm-adjusted p "
               f"any pair can reach is {reach['min_adjusted_p']:.3g}, not below {ALPHA}, so every pair is a tie "
               "by construction; ")
    per = stats.power(len(data.datasets), reach["pairs"], ALPHA)
    per_embedder = ("" if len(data.embedders) < 2 else
                    f"per embedder ({plural(len(data.datasets), 'dataset')}) the smallest is {per['min_adjusted_p']:.3g}; ")
    more = max(0, reach["problems_needed"] - n)
    datasets_more = math.ceil(more / max(1, len(data.embedders)))
    add = (f"To decide more, add datasets: {reach['problems_needed']} problems would let a pair reach {ALPHA} "
           f"(about {plural(datasets_more, 'more dataset')} with these embedders), or compare fewer strategies. "
           if more else "More datasets would narrow every interval. ")
    return (head + can + per_embedder + "what it can decide is whether a strategy's mean gain over random "
            "lies above or below 0, from the intervals. More seeds narrow each problem's interval but add no "
            "problems. " + add)


def build(context) -> Section:
    data = context.data
    if data.main().empty or context.auc not in data.main():
        return Section(NAME, TITLE, notes(["no complete cell yet: no answer"]), {"answers": []})
    found = answers(context, context.auc)
    other_metric = f"auc_{context.other_metric}"
    other = answers(context, other_metric) if other_metric in data.main() else []
    if not found:
        return Section(NAME, TITLE, notes(["fewer than two strategies with complete cells on a common problem"]),
                       {"answers": []})
    main = next((a for a in found if a["scope"] == "all embedders"), None)
    label, other_label = context.metric.replace("_", "-"), context.other_metric.replace("_", "-")
    lines = [sentence(a, label) for a in found]
    other_line = ""
    if other:
        o = next((a for a in other if a["scope"] == "all embedders"), other[0])
        other_line = (f"In {esc(other_label)} instead (the other metric): " + sentence(o, other_label))
    pools, pool_table = pool_sentences(context)
    body = ('<div class="answer">' + words(*lines) + "</div>" + words(other_line)
            + "<h3>Initial pool</h3>" + words(*pools)
            + "<h3>What this grid can decide</h3>" + words(esc(decide(context, main)))
            + words(f"Strategies are compared from the initial pool <b>{esc(data.main_pool)}</b>, ranked by "
                    f"<code>report.metric</code> = {esc(context.metric)}; the sections below hold every number "
                    "(Strategy comparison: ranks and tests; AUC family: gains; Initial pool: both pools)."))
    shown = pd.DataFrame([{k: v for k, v in a.items() if k != "power"} for a in found + other])
    body += "<details><summary>the answers as a table</summary>" + table(shown, digits=4) + "</details>"
    return Section(NAME, TITLE, body, {"answers": found, "other_metric": other, "initial_pool": data.main_pool,
                                       "pools": pool_table, "decide": decide(context, main), "metric": context.metric})
