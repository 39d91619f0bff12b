"""What the sections share: the data, the figure writer, colours, and the gains computed once."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from orchestrator.report import stats
from orchestrator.report.data import RANDOM, ReportData
from orchestrator.report.page import Figures, strategy_colors

ALPHA = 0.05
METRICS = ("accuracy", "macro_f1")


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

    @property
    def metric(self) -> str:
        """The curve metric the report ranks by (``report.metric``: accuracy or macro_f1)."""
        return getattr(self.config.report, "metric", "accuracy")

    @property
    def other_metric(self) -> str:
        return next(m for m in METRICS if m != self.metric)

    @property
    def auc(self) -> str:
        """The trial summary the report compares: the full AUC of ``metric``."""
        return f"auc_{self.metric}"

    @cached_property
    def _comparisons(self) -> dict:
        return {}

    def comparisons(self, metric: str | None = None) -> dict[str, tuple[stats.Comparison, pd.DataFrame]]:
        """The strategy comparison over problems of the main initial pool, once per metric:
        "all embedders" and "embedder <name>" (when there are several). The "What to use"
        section and the comparison section read the same objects."""
        metric = metric or self.auc
        if metric not in self._comparisons:
            main = self.data.main()
            found: dict[str, stats.Comparison] = {}
            if not main.empty and metric in main:
                scores = stats.problem_scores(main, metric)
                groups = [("all embedders", scores)]
                if len(self.data.embedders) > 1:
                    groups += [(f"embedder {e}", scores[scores.index.get_level_values("embedder") == e])
                               for e in self.data.embedders]
                for label, part in groups:
                    if part.shape[1] >= 2 and len(part):
                        found[label] = (stats.compare(part, alpha=ALPHA, tie_threshold=self.config.report.tie_threshold),
                                        part)
            self._comparisons[metric] = found
        return self._comparisons[metric]

    @cached_property
    def _gains(self) -> dict[str, stats.Gains]:
        return {}

    def gains(self, metric: str | None = None) -> stats.Gains:
        """Gain over random per (problem, strategy) from the main initial pool, paired by seed."""
        metric = metric or self.auc
        if metric not in self._gains:
            main = self.data.main()
            if main.empty or metric not in main:
                self._gains[metric] = stats.Gains(pd.DataFrame(columns=["dataset", "embedder", "strategy", "gain",
                                                                        "ci_low", "ci_high", "seeds"]),
                                                  ["no finished trials in complete cells yet"])
            else:
                self._gains[metric] = stats.gain_over_random(main, metric, random=RANDOM)
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
                return sorted(names, key=lambda n: mean[n]), ("measured quality (headroom-scaled, mean over "
                                                              "datasets; section Embedding quality)")
        return names, "config order (no quality for every embedder)"


def across_problems(gains: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: the mean of the per-problem gains with its t interval over problems (the
    unit: a problem, seeds averaged), and how many problems' t interval over seeds lies above 0,
    below 0, or contains 0."""
    columns = ["strategy", "problems", "mean_gain", "ci_low", "ci_high", "unit", "above_0", "contains_0",
               "below_0"]
    if gains.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for strategy, group in gains.groupby("strategy", sort=False):
        found = stats.mean_interval(group["gain"], "problem")
        with_ci = group["ci_low"].notna()
        rows.append({"strategy": strategy, "problems": found["n"], "mean_gain": found["mean"],
                     "ci_low": found["ci_low"], "ci_high": found["ci_high"], "unit": "problem",
                     "above_0": int(((group["ci_low"] > 0) & with_ci).sum()),
                     "contains_0": int(((group["ci_low"] <= 0) & (group["ci_high"] >= 0) & with_ci).sum()),
                     "below_0": int(((group["ci_high"] < 0) & with_ci).sum())})
    return pd.DataFrame(rows, columns=columns)
