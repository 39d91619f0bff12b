"""Reports read back from MLflow: the AUC table and trial status counts."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from rich.table import Table

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
        table.add_row(dataset, embedder, pool, strategy, shown, str(len(values)))
    return table


def status_counts(trials: list[TrialSpec], runs: dict[str, TrialRun]) -> tuple[Table, list[tuple[TrialSpec, str]]]:
    """Done / failed / running / pending per (dataset, embedder), and the failed trials."""
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: {"done": 0, "failed": 0, "running": 0, "pending": 0}
    )
    failed: list[tuple[TrialSpec, str]] = []
    for trial in trials:
        run = runs.get(trial.trial_key)
        cell = counts[(trial.dataset, trial.embedder)]
        if run is None:
            cell["pending"] += 1
        elif run.status == "FINISHED":
            cell["done"] += 1
        elif run.status == "RUNNING":
            cell["running"] += 1
        else:  # FAILED, KILLED
            cell["failed"] += 1
            failed.append((trial, run.tags.get(ERROR_TAG, run.status)))
    table = Table(title="trial status")
    for column in ("dataset", "embedder", "done", "failed", "running", "pending"):
        table.add_column(column)
    for (dataset, embedder), c in sorted(counts.items()):
        table.add_row(dataset, embedder, *(str(c[k]) for k in ("done", "failed", "running", "pending")))
    return table, failed
