"""Grid status, at the top: per (dataset, embedder) how many trials finished, failed, are
unfinished or missing, and which cells are incomplete (drawn nowhere in the report)."""

from __future__ import annotations

from orchestrator.report.page import Section, esc, notes, table, words

NAME = "status"
AFTER = "what-to-use"
TITLE = "Grid status"


def build(context) -> Section:
    data = context.data
    cells = data.cells
    if cells.empty:
        return Section(NAME, TITLE, notes(["the grid has no trials"]), {"cells": []})
    per_problem = (cells.groupby(["dataset", "embedder"], sort=False)[["finished", "failed", "unfinished",
                                                                       "missing"]].sum().reset_index())
    incomplete = data.incomplete()
    n = {k: int(cells[k].sum()) for k in ("finished", "failed", "unfinished", "missing")}
    total = sum(n.values())
    messages = []
    if n["finished"] == 0:
        messages.append("no finished trials yet: every section below is empty until trials finish "
                        "(`albench run CONFIG`)")
    if len(data.seeds) == 1:
        messages.append("one seed per cell: means are shown without confidence intervals or bands "
                        "(a CI needs at least two seeds)")
    text = words(
        f"{total} trials: <b>{n['finished']}</b> finished, {n['failed']} failed, {n['unfinished']} "
        f"unfinished (running or interrupted), {n['missing']} not started. A cell (dataset, embedder, "
        f"initial pool, strategy) is drawn only when all of its {len(data.seeds)} seeds finished: "
        f"{int(cells['complete'].sum())} of {len(cells)} cells are complete."
        + (f" The {len(incomplete)} incomplete cells are listed below and left out everywhere "
           "(a mean over fewer seeds is never shown as the grid's)." if len(incomplete) else ""))
    shown = incomplete[["dataset", "embedder", "initial_pool", "strategy", "finished", "failed",
                        "unfinished", "missing", "expected"]]
    body = notes(messages) + text + table(per_problem, caption="trials per (dataset, embedder)")
    if len(shown):
        body += (f"<details open><summary>{esc(len(shown))} incomplete cells (not drawn)</summary>"
                 + table(shown, limit=200) + "</details>")
    return Section(NAME, TITLE, body, {"totals": n, "incomplete_cells": shown, "messages": messages})
