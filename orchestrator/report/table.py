"""Reports read back from MLflow: the AUC table and trial status counts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from rich.table import Table
from rich.text import Text

from orchestrator.tracking import ERROR_TAG, TrialRun
from workers.specs import TrialSpec


def auc_table(trials: list[TrialSpec], runs: dict[str, TrialRun], metric: str = "auc_accuracy") -> Table:
    """Mean +- std over seeds of ``metric`` per (dataset, embedder, initial pool, strategy)."""
    cells: dict[tuple, list[float]] = defaultdict(list)
    for trial in trials:
        run = runs.get(trial.trial_key)
        cell = (trial.dataset, trial.embedder, trial.initial_pool.label, trial.strategy.label)
        cells.setdefault(cell, [])
        if run is not None and run.status == "FINISHED" and metric in run.metrics:
            cells[cell].append(run.metrics[metric])
    table = Table(title=f"{metric} (mean +- std over seeds)")
    for column in ("dataset", "embedder", "initial pool", "strategy", metric, "seeds"):
        table.add_column(column, justify="right" if column in (metric, "seeds") else "left")
    for (dataset, embedder, pool, strategy), values in sorted(cells.items()):
        shown = (f"{np.mean(values):.4f} +- {np.std(values, ddof=1) if len(values) > 1 else 0:.4f}"
                 if values else "-")
        table.add_row(*_literal(dataset, embedder, pool, strategy, shown, str(len(values))))
    return table


@dataclass
class GridStatus:
    """Where a grid stands, per (dataset, embedder) and in total."""

    table: Table
    totals: dict[str, int]
    failed: list[tuple[TrialSpec, str]]
    interrupted: list[tuple[TrialSpec, str]]


STATES = ("done", "failed", "running", "pending")


def grid_status(trials: list[TrialSpec], runs: dict[str, TrialRun], *, driver_running: bool,
                checkpoints: dict[str, int] | None = None,
                stored: dict[tuple[str, str], bool] | None = None) -> GridStatus:
    """Done / failed / running / pending per (dataset, embedder), and the failed trials.

    done: a FINISHED run. failed: a FAILED run (its error is listed). running: a RUNNING run
    while a driver holds the grid lock. pending: no run yet, or an interrupted one (KILLED by
    Ctrl-C, or RUNNING with no driver alive: the driver was killed); those resume from their
    checkpoint (``checkpoints``: trial key -> last completed cycle) on the next ``albench run``.
    """
    checkpoints = checkpoints or {}
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATES, 0))
    failed: list[tuple[TrialSpec, str]] = []
    interrupted: list[tuple[TrialSpec, str]] = []
    for trial in trials:
        run = runs.get(trial.trial_key)
        cell = counts[(trial.dataset, trial.embedder)]
        if run is None:
            cell["pending"] += 1
        elif run.status == "FINISHED":
            cell["done"] += 1
        elif run.status == "FAILED":
            cell["failed"] += 1
            failed.append((trial, run.tags.get(ERROR_TAG, "FAILED (no error recorded)")))
        elif run.status == "RUNNING" and driver_running:
            cell["running"] += 1
        else:  # KILLED, or RUNNING with no driver alive
            cell["pending"] += 1
            cycle = checkpoints.get(trial.trial_key)
            where = (f"resumes after cycle {cycle} of {trial.protocol.n_cycles}" if cycle is not None
                     else "restarts from cycle 0")
            why = "interrupted (Ctrl-C or SIGTERM)" if run.status == "KILLED" else "its driver died"
            interrupted.append((trial, f"{why}; {where}"))
    table = Table(title="trial status")
    columns = ["dataset", "embedder", *STATES] + (["store"] if stored is not None else [])
    for column in columns:
        table.add_column(column, justify="right" if column in STATES else "left")
    totals = dict.fromkeys(STATES, 0)
    for (dataset, embedder), c in sorted(counts.items()):
        row = [dataset, embedder, *(str(c[k]) for k in STATES)]
        if stored is not None:
            row.append("embedded" if stored.get((dataset, embedder)) else "missing")
        table.add_row(*_literal(*row))
        for k in STATES:
            totals[k] += c[k]
    return GridStatus(table, totals, failed, interrupted)


def _literal(*cells: str) -> list[Text]:
    """Table cells printed as they are (a name like ``[red]`` is not rich markup)."""
    return [Text(cell) for cell in cells]
