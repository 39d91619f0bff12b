"""What every report section reads: the grid's tidy tables, which cells are complete, the AUC family.

``ReportData.load`` reads the experiment in bulk (``orchestrator.results.read_results``: a few
queries on a SQL store, whatever the number of trials), adds the AUC family of every finished
trial's curves and sorts the cells (dataset, embedder, initial pool, strategy) into complete
ones (every seed FINISHED) and incomplete ones. Sections draw only complete cells: a mean over
fewer seeds than the grid asked for is never shown as if it were the grid's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from orchestrator.report.stats import auc_family
from orchestrator.results import KEY_COLUMNS, RANDOM, read_results

CELL = ["dataset", "embedder", "initial_pool", "strategy"]
FAMILY_METRICS = ("accuracy", "macro_f1")
"""Curves whose AUC family (full, early, late, final) is computed per trial."""


@dataclass
class ReportData:
    """The grid's results, ready for the sections."""

    trials: pd.DataFrame
    """One row per trial of the grid (every key, status, params, summary and AUC-family metric)."""
    curves: pd.DataFrame
    """One row per trial and cycle (trial key, the keys of its cell, step, every cycle metric)."""
    cells: pd.DataFrame
    """One row per cell: finished / failed / unfinished / missing counts, ``complete``."""
    seeds: list[int]
    datasets: list[str]
    embedders: list[str]
    strategies: list[str]
    initial_pools: list[str]
    early_points: int
    messages: list[str] = field(default_factory=list)

    @property
    def done(self) -> pd.DataFrame:
        """FINISHED trials of complete cells only."""
        complete = self.cells.loc[self.cells["complete"], CELL]
        finished = self.trials[self.trials["status"] == "FINISHED"]
        return finished.merge(complete, on=CELL, how="inner")

    @property
    def main_pool(self) -> str:
        """The initial pool strategies are compared from (the config's first; random if listed)."""
        return RANDOM if RANDOM in self.initial_pools else self.initial_pools[0]

    def main(self) -> pd.DataFrame:
        """``done`` from the main initial pool."""
        done = self.done
        return done[done["initial_pool"] == self.main_pool]

    def incomplete(self) -> pd.DataFrame:
        return self.cells[~self.cells["complete"]]

    @classmethod
    def load(cls, config, tracker, trials) -> ReportData:
        trials = list(trials)
        results = read_results(tracker, trials)
        n_cycles = config.protocol.n_cycles
        early = config.report.early_cycles or max(2, round((n_cycles + 1) / 3))
        return cls.from_tables(results.trials, results.curves, seeds=list(config.seeds),
                               datasets=[d.name for d in config.datasets],
                               embedders=[e.name for e in config.embedders],
                               strategies=[s.label for s in config.strategies],
                               initial_pools=[p.label for p in config.initial_pools],
                               early_points=min(early, n_cycles + 1))

    @classmethod
    def from_tables(cls, trials: pd.DataFrame, curves: pd.DataFrame, *, seeds, datasets, embedders,
                    strategies, initial_pools, early_points: int) -> ReportData:
        trials = trials.copy()
        if trials.empty:
            trials = pd.DataFrame(columns=[*KEY_COLUMNS, "status", "run_id"])
        keys = trials[list(KEY_COLUMNS)]
        curves = keys.merge(curves, on="trial_key", how="inner") if not curves.empty else \
            pd.DataFrame(columns=[*KEY_COLUMNS, *curves.columns.drop("trial_key", errors="ignore")])
        curves = curves.sort_values(["trial_key", "step"], kind="stable").reset_index(drop=True)
        trials = _with_family(trials, curves, early_points)
        return cls(trials=trials, curves=curves, cells=_cells(trials), seeds=seeds,
                   datasets=datasets, embedders=embedders, strategies=strategies,
                   initial_pools=initial_pools, early_points=early_points)


def _with_family(trials: pd.DataFrame, curves: pd.DataFrame, early_points: int) -> pd.DataFrame:
    """Add ``early_auc_<m>``, ``late_auc_<m>`` (and the full AUC and final value where the run
    has none) for the finished trials; the cost of their queries after the initial pool."""
    finished = set(trials.loc[trials["status"] == "FINISHED", "trial_key"])
    part = curves[curves["trial_key"].isin(finished)]
    rows: dict[str, dict[str, float]] = {}
    if not part.empty:
        keys = part["trial_key"].to_numpy()
        bounds = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(keys)]])
        steps = part["step"].to_numpy(dtype=np.float64)
        columns = {m: part[m].to_numpy(dtype=np.float64) for m in (*FAMILY_METRICS, "query_seconds",
                                                                  "fit_seconds") if m in part}
        for start, end in zip(starts, ends):
            row: dict[str, float] = {}
            x = steps[start:end]
            for metric in FAMILY_METRICS:
                if metric not in columns:
                    continue
                family = auc_family(x, columns[metric][start:end], early_points)
                row[f"family_auc_{metric}"] = family["auc"]
                row[f"early_auc_{metric}"] = family["early_auc"]
                row[f"late_auc_{metric}"] = family["late_auc"]
                row[f"family_final_{metric}"] = family["final"]
            if "query_seconds" in columns:
                q = columns["query_seconds"][start:end]
                row["initial_pool_seconds"] = float(q[0])
                row["strategy_query_seconds"] = float(np.nansum(q[1:]))
            if "fit_seconds" in columns:
                row["total_fit_seconds"] = float(np.nansum(columns["fit_seconds"][start:end]))
            rows[keys[start]] = row
    extra = pd.DataFrame.from_dict(rows, orient="index")
    if extra.empty:
        return trials
    extra.index.name = "trial_key"
    trials = trials.merge(extra, left_on="trial_key", right_index=True, how="left")
    for metric in FAMILY_METRICS:  # the run's own summary wins; the curve's where the run has none
        for name in (f"auc_{metric}", f"final_{metric}"):
            computed = trials.pop(f"family_{name}") if f"family_{name}" in trials else None
            if computed is not None:
                trials[name] = trials[name].fillna(computed) if name in trials else computed
    return trials


def _cells(trials: pd.DataFrame) -> pd.DataFrame:
    """Per cell: trials finished, failed, unfinished (running or interrupted) and missing."""
    if trials.empty:
        return pd.DataFrame(columns=[*CELL, "finished", "failed", "unfinished", "missing", "expected",
                                     "complete"])
    status = trials["status"]
    counted = trials.assign(
        finished=(status == "FINISHED").astype(int), failed=(status == "FAILED").astype(int),
        missing=(status == "MISSING").astype(int),
        unfinished=(~status.isin(["FINISHED", "FAILED", "MISSING"])).astype(int))
    grouped = counted.groupby(CELL, sort=False)
    cells = grouped[["finished", "failed", "unfinished", "missing"]].sum()
    cells["expected"] = grouped.size()  # the grid's trials of the cell: one per seed
    cells = cells.reset_index()
    cells["complete"] = cells["finished"] >= cells["expected"]
    return cells
