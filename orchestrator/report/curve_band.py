"""A mean learning curve with its confidence band: how it is computed and drawn, for both the
parent runs' ``curves.png`` (``cell_figures.py``) and the report's static learning-curve figure
(``sections/curves.py``).

The band is Student's t interval of the mean over seeds, clipped to [0, 1]: accuracy and
macro-F1 cannot leave it, and a wide interval of few seeds near 1 would otherwise draw above it.
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.95
"""The confidence level of every interval the report and the parent runs' figures show."""
BOUNDS = (0.0, 1.0)
"""The range of the metrics drawn (accuracy, macro-F1): the band is clipped to it."""
ALPHA = 0.15


def t_half_width(sd, n, level: float = LEVEL) -> np.ndarray:
    """Half the width of Student's t interval of a mean, from the standard deviation (ddof=1)
    and the count of the values; NaN where there is no interval (fewer than two values, or no
    finite deviation). The one t interval of the report, its curve bands and the parent runs'."""
    from scipy.special import stdtrit  # Student's t quantile (scipy.stats costs 3x the import)

    sd, n = np.asarray(sd, dtype=np.float64), np.asarray(n, dtype=np.float64)
    ok = (n > 1) & np.isfinite(sd)
    count = np.where(ok, n, 2.0)
    return np.where(ok, stdtrit(count - 1, 0.5 + level / 2) * np.where(ok, sd, 0.0) / np.sqrt(count), np.nan)


def t_band(mean, sd, n, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per step from the seeds' mean, standard deviation (ddof=1) and count: the t
    interval of the mean clipped to ``BOUNDS``; NaN where it has no interval."""
    mean, half = np.asarray(mean, dtype=np.float64), t_half_width(sd, n, level)
    return np.clip(mean - half, *BOUNDS), np.clip(mean + half, *BOUNDS)


def draw(axes, steps, mean, low, high, *, color: str, linestyle: str = "-", label: str | None = None,
         linewidth: float = 1.5) -> None:
    """One mean curve on matplotlib ``axes``, with its band where it has one (every low and high
    finite); the line carries ``label``, the band none."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if low.size and np.isfinite(low).all() and np.isfinite(high).all():
        axes.fill_between(steps, low, high, color=color, alpha=ALPHA, linewidth=0)
    axes.plot(steps, mean, linestyle=linestyle, color=color, linewidth=linewidth, label=label)
