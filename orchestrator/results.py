"""Results as tidy tables: one row per trial, one row per trial and cycle, read in bulk.

``read_results`` turns an experiment's runs into two pandas DataFrames without one tracker
call per trial: the runs come from paged searches, the curves from bulk history queries
(``Tracker.curves``). ``summarize`` is the one place where a curve becomes its summary metrics
(AUC, final values, total query time).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.tracking import Tracker, TrialRun
from orchestrator.tracking.base import Curve
from workers.metrics import normalized_auc
from workers.specs import TrialSpec
from workers.trajectory import CYCLE_METRICS

KEY_COLUMNS = ("trial_key", "dataset", "embedder", "initial_pool", "strategy", "seed")
PROBLEM = ["dataset", "embedder"]
"""The columns naming a problem: the strategies are compared within each."""
RANDOM = "random"
"""The baseline strategy (and initial pool) the others are compared with."""


def summarize(curves: dict[str, Curve]) -> dict[str, float]:
    """AUC and final value of accuracy and macro-F1, the total query seconds, and the cycles in
    which the learner predicted one class for every test row."""
    result: dict[str, float] = {}
    for metric in ("accuracy", "macro_f1"):
        steps = np.array([s for s, _ in curves[metric]], dtype=np.float64)
        values = np.array([v for _, v in curves[metric]], dtype=np.float64)
        result[f"auc_{metric}"] = normalized_auc(steps, values)
        result[f"final_{metric}"] = float(values[-1])
    result["total_query_seconds"] = float(sum(v for _, v in curves["query_seconds"]))
    result["single_class_cycles"] = float(sum(1 for _, v in curves.get("predicted_classes", []) if v == 1))
    return result


@dataclass(frozen=True)
class Results:
    """``trials``: one row per trial of the grid (keys, status, run id, params, summary
    metrics; trials without a run have status ``MISSING``). ``curves``: one row per trial
    with a run and per step (trial key, step, one column per cycle metric)."""

    trials: pd.DataFrame
    curves: pd.DataFrame


def read_results(tracker: Tracker, trials: Iterable[TrialSpec], *, with_curves: bool = True) -> Results:
    """The grid's results, read in bulk (see the module docstring)."""
    trials = list(trials)
    runs = tracker.trial_runs()
    rows = [_trial_row(trial, runs.get(trial.trial_key)) for trial in trials]
    table = pd.DataFrame(rows)
    if not with_curves:
        return Results(table, pd.DataFrame(columns=["trial_key", "step", *CYCLE_METRICS]))
    with_run = [(t.trial_key, runs[t.trial_key].run_id) for t in trials if t.trial_key in runs]
    histories = tracker.curves([run_id for _, run_id in with_run], CYCLE_METRICS)
    points = []
    for key, run_id in with_run:
        per_step: dict[int, dict[str, float]] = {}
        for metric, curve in histories[run_id].items():
            for step, value in curve:
                per_step.setdefault(step, {})[metric] = value
        points.extend({"trial_key": key, "step": step, **values} for step, values in sorted(per_step.items()))
    curves = pd.DataFrame(points, columns=["trial_key", "step", *CYCLE_METRICS])
    return Results(table, curves)


def _trial_row(trial: TrialSpec, run: TrialRun | None) -> dict:
    row = {
        "trial_key": trial.trial_key, "dataset": trial.dataset, "embedder": trial.embedder,
        "initial_pool": trial.initial_pool.label, "strategy": trial.strategy.label, "seed": trial.seed,
        "embedding_key": trial.embedding_key,
        "status": run.status if run is not None else "MISSING",
        "run_id": run.run_id if run is not None else None,
    }
    if run is not None:
        row.update({f"param.{k}": v for k, v in (run.params or {}).items()
                    if k not in ("dataset", "embedder", "initial_pool", "strategy", "seed")})
        row.update(run.metrics)
    return row
