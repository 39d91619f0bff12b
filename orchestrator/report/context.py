"""What the sections share: the data, the figure writer, colours, and the gains computed once."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from orchestrator.report import stats
from orchestrator.report.data import RANDOM, ReportData
from orchestrator.report.page import Figures, strategy_colors

ALPHA = 0.05
N_BOOT = 2000


@dataclass
class Context:
    config: object
    data: ReportData
    figures: Figures
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Measured quality per (dataset, embedder): columns dataset, embedder, quality, ..."""
    quality_messages: list[str] = field(default_factory=list)
    jobs: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @cached_property
    def colors(self) -> dict[str, str]:
        return strategy_colors(self.data.strategies)

    @cached_property
    def _gains(self) -> dict[str, stats.Gains]:
        return {}

    def gains(self, metric: str = "auc_accuracy") -> stats.Gains:
        """Gain over random per (problem, strategy) from the main initial pool, paired by seed."""
        if metric not in self._gains:
            main = self.data.main()
            if main.empty or metric not in main:
                self._gains[metric] = stats.Gains(pd.DataFrame(columns=["dataset", "embedder", "strategy", "gain",
                                                                        "ci_low", "ci_high", "seeds"]),
                                                  ["no finished trials in complete cells yet"])
            else:
                self._gains[metric] = stats.gain_over_random(main, metric, random=RANDOM, n_boot=N_BOOT)
        return self._gains[metric]

    def embedder_order(self) -> tuple[list[str], str]:
        """Embedders ordered by quality (lowest first) and the words saying by which quality."""
        user = getattr(self.config.report, "embedder_quality", {}) or {}
        names = list(self.data.embedders)
        if user and all(name in user for name in names):
            return sorted(names, key=lambda n: user[n]), "the user-supplied quality (report.embedder_quality)"
        if not self.quality.empty:
            mean = self.quality.groupby("embedder")["quality"].mean()
            if all(name in mean.index for name in names):
                return sorted(names, key=lambda n: mean[n]), "measured quality (mean over datasets, section 6)"
        return names, "config order (no quality for every embedder)"


def across_problems(gains: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Per strategy: the mean of the per-problem gains, a bootstrap CI over problems, and how many
    problems' seed-paired CI lies above 0, below 0, or contains 0."""
    rows = []
    if gains.empty:
        return pd.DataFrame(columns=["strategy", "problems", "mean_gain", "ci_low", "ci_high",
                                     "above_0", "contains_0", "below_0"])
    for strategy, group in gains.groupby("strategy", sort=False):
        values = group["gain"].to_numpy(dtype=np.float64)
        lo, hi = stats.bootstrap_ci(values, n_boot=N_BOOT, seed=seed)
        with_ci = group["seeds"] > 1
        rows.append({"strategy": strategy, "problems": len(values), "mean_gain": float(values.mean()),
                     "ci_low": lo if len(values) > 1 else None, "ci_high": hi if len(values) > 1 else None,
                     "above_0": int(((group["ci_low"] > 0) & with_ci).sum()),
                     "contains_0": int(((group["ci_low"] <= 0) & (group["ci_high"] >= 0) & with_ci).sum()),
                     "below_0": int(((group["ci_high"] < 0) & with_ci).sum())})
    return pd.DataFrame(rows)
