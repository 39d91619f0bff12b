"""The mean curve and its band (orchestrator/report/curve_band.py), as both the parent runs'
figures and the report's learning curves compute and draw it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from scipy import stats

from orchestrator.report import cell_figures
from orchestrator.report.curve_band import draw, t_band
from orchestrator.report.sections import curves as curves_section


def test_the_band_is_students_t_interval_of_the_mean_and_none_from_one_seed():
    rng = np.random.default_rng(0)
    values = rng.uniform(0.3, 0.7, size=(4, 6))
    low, high = t_band(values.mean(axis=0), values.std(axis=0, ddof=1), np.full(6, 4))
    expected = stats.t.interval(0.95, 3, loc=values.mean(axis=0), scale=stats.sem(values, axis=0))
    np.testing.assert_allclose(low, expected[0])
    np.testing.assert_allclose(high, expected[1])
    low, high = t_band([0.5, 0.6], [np.nan, 0.1], [1, 3])
    assert np.isnan(low[0]) and np.isnan(high[0]) and np.isfinite(low[1]) and np.isfinite(high[1])


def near_one(seeds: int = 3) -> np.ndarray:
    """Seeds x steps of accuracies near 1 whose t interval reaches past 1 (and one near 0)."""
    values = np.array([[0.99, 1.0, 0.6], [0.7, 1.0, 0.02], [0.98, 0.9, 0.0]])[:seeds]
    mean, sem = values.mean(axis=0), stats.sem(values, axis=0)
    unclipped = stats.t.interval(0.95, seeds - 1, loc=mean, scale=sem)
    assert unclipped[1][0] > 1 and unclipped[0][2] < 0  # what would be drawn without the clip
    return values


def test_the_band_is_clipped_to_zero_one_in_both_figures():
    values = near_one()
    low, high = t_band(values.mean(axis=0), values.std(axis=0, ddof=1), np.full(3, 3))
    assert high.max() == 1.0 and low.min() == 0.0
    # the parent runs' figures
    curves = [[(10 * (j + 1), float(v)) for j, v in enumerate(row)] for row in values]
    _, mean, low, high = cell_figures.mean_band(curves)
    assert high.max() == 1.0 and low.min() == 0.0 and np.all(low <= mean) and np.all(mean <= high)
    # the report's learning curves
    frame = pd.DataFrame([{"step": step, "accuracy": value} for curve in curves for step, value in curve])
    band = curves_section.mean_band(frame, "accuracy")
    np.testing.assert_allclose(band["high"], high)
    np.testing.assert_allclose(band["low"], low)


def test_draw_puts_the_clipped_band_under_a_labelled_line_and_no_band_from_one_seed():
    figure = Figure()
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    values = near_one()
    steps = [10, 20, 30]
    mean = values.mean(axis=0)
    draw(axes, steps, mean, *t_band(mean, values.std(axis=0, ddof=1), np.full(3, 3)),
         color="C0", linestyle="--", label="margin")
    draw(axes, steps, mean, *t_band(mean, np.zeros(3), np.ones(3)), color="C1", label="random")
    bands = [c for c in axes.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1  # one seed: no band
    ys = np.concatenate([path.vertices[:, 1] for path in bands[0].get_paths()])
    assert ys.max() == 1.0 and ys.min() == 0.0
    lines = axes.get_lines()
    assert [line.get_label() for line in lines] == ["margin", "random"]
    assert lines[0].get_linestyle() == "--"
    np.testing.assert_allclose(lines[1].get_ydata(), mean)
    assert axes.get_legend_handles_labels()[1] == ["margin", "random"]
