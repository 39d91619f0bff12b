"""The figure on each (dataset, embedder) parent run: its strategies' mean learning curves.

While a grid runs, the parent run of every cell carries ``curves.png``: test accuracy against
the number of labelled rows, one line per strategy (and initial pool, when the cell has
several), the mean over the finished seeds with a 95 % band (Student's t interval of the
mean, clipped to [0, 1]; drawn by ``curve_band``), random dashed. The driver hands each finished trial's curve over (it holds it already:
nothing is read back per trial); one background thread renders a cell as soon as every trial
of it has finished (its final figure), a cell still running at most once every
``REFRESH_SECONDS`` (the first time one period into the session: a figure of its first few
trials would be redrawn soon anyway), and every cell still out of date once more at the end of
the session, so the driver's loop never renders or uploads. Trials finished in earlier sessions are read once
per cell, in bulk, the first time that cell is drawn.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from orchestrator.report.curve_band import LEVEL, draw, t_band
from orchestrator.results import RANDOM
from orchestrator.threads import DaemonPool
from orchestrator.tracking import Tracker, TrialRun
from workers.specs import TrialSpec

log = logging.getLogger(__name__)
FIGURE_NAME = "curves.png"
REFRESH_SECONDS = 60.0
"""A running cell's figure is drawn at most this often (a finished cell's at once)."""
METRIC = "accuracy"

Cell = tuple[str, str]
"""(dataset, embedder)."""


def mean_band(curves: list[list[tuple[int, float]]], level: float = LEVEL):
    """(steps, mean, low, high) over ``curves`` on the steps every curve has; the band is the
    t interval of the mean clipped to [0, 1] (``curve_band.t_band``; no band from a single
    curve: low = high = mean)."""
    common = sorted(set.intersection(*({s for s, _ in c} for c in curves))) if curves else []
    points = [dict(c) for c in curves]
    values = np.array([[p[s] for s in common] for p in points], dtype=np.float64).reshape(len(curves), -1)
    mean = values.mean(axis=0) if len(curves) else np.array([])
    if len(curves) < 2:
        return np.array(common), mean, mean, mean
    low, high = t_band(mean, values.std(axis=0, ddof=1), np.full(len(common), len(curves)), level)
    return np.array(common), mean, low, high


def render(path: Path, title: str, lines: dict[tuple[str, str], list[list[tuple[int, float]]]]) -> None:
    """Draw ``lines`` ((strategy, initial pool) -> curves) into the PNG ``path``: one panel per
    initial pool (shared y axis), one colour per strategy in every panel, random dashed
    (matplotlib's object API with the Agg canvas: no pyplot state, safe off the main thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pools = sorted({pool for _, pool in lines}, key=lambda p: (p != RANDOM, p))
    figure = Figure(figsize=(1.0 + 5.5 * len(pools), 4.5), dpi=100)
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, len(pools), sharey=True, squeeze=False)[0]
    strategies = sorted({s for s, _ in lines}, key=lambda s: (s != RANDOM, s))
    colors = {s: f"C{i % 10}" for i, s in enumerate(strategies)}
    for axes, pool in zip(panels, pools):
        for strategy in strategies:
            if (strategy, pool) not in lines:
                continue
            steps, mean, low, high = mean_band(lines[(strategy, pool)])
            draw(axes, steps, mean, low, high, color=colors[strategy], linewidth=1.6,
                 linestyle="--" if strategy == RANDOM else "-",
                 label=f"{strategy} (n={len(lines[(strategy, pool)])})")
        axes.set_title(f"initial pool: {pool}", fontsize=9)
        axes.set_xlabel("labelled examples")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="lower right")
    panels[0].set_ylabel(f"test {METRIC}")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, format="png")


class CellFigures:
    """Keeps the finished curves per cell and keeps each parent run's figure up to date."""

    METRIC = METRIC

    def __init__(self, tracker: Tracker, trials: Iterable[TrialSpec], existing: dict[str, TrialRun],
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.tracker = tracker
        self.refresh_seconds = refresh_seconds
        self._trials = {t.trial_key: t for t in trials}
        self._size: dict[Cell, int] = defaultdict(int)
        """Trials per cell in the grid: a cell with that many finished curves is complete."""
        for trial in self._trials.values():
            self._size[(trial.dataset, trial.embedder)] += 1
        self._earlier: dict[Cell, list[tuple[TrialSpec, str]]] = defaultdict(list)
        for key, run in existing.items():  # finished before this session: read when first drawn
            if run.status == "FINISHED" and key in self._trials:
                trial = self._trials[key]
                self._earlier[(trial.dataset, trial.embedder)].append((trial, run.run_id))
        self._curves: dict[Cell, dict[str, tuple[TrialSpec, list]]] = defaultdict(dict)
        self._dirty: set[Cell] = set()
        self._started = time.monotonic()
        self._drawn: dict[Cell, float] = {}
        self._lock = threading.Lock()
        self._pool = DaemonPool(1, "albench-figures")  # never holds a stopped driver at exit
        self._job: Future | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="albench-figures-")
        self.rendered = 0
        """Figures drawn and attached (for tests and ``bench/tracking.py``)."""
        self.cpu_seconds = 0.0
        """CPU seconds the figure thread spent (reading, drawing, uploading)."""

    def add(self, trial: TrialSpec, points: dict[int, float]) -> None:
        """A trial finished with this curve (step -> value): its cell is due for a redraw."""
        cell = (trial.dataset, trial.embedder)
        with self._lock:
            self._curves[cell][trial.trial_key] = (trial, sorted(points.items()))
            self._dirty.add(cell)

    def tick(self) -> None:
        """Called from the driver's loop: starts a redraw of the cells that are due (complete
        ones, and running ones not drawn for ``refresh_seconds``), unless one is still being
        drawn (returns at once)."""
        if not self._dirty or (self._job is not None and not self._job.done()):
            return
        now = time.monotonic()
        with self._lock:
            due = {c for c in self._dirty if self._complete(c)
                   or now - self._drawn.get(c, self._started) >= self.refresh_seconds}
        if due:
            self._job = self._pool.submit(self._draw, due)

    def close(self) -> None:
        """Draw every cell still out of date, wait for it, stop the thread."""
        if self._job is not None:
            self._job.result()
        with self._lock:
            due = set(self._dirty)
        if due:
            self._pool.submit(self._draw, due).result()
        self._pool.shutdown(wait=True)
        self._folder.cleanup()

    # ---------------------------------------------------------------------------- internals
    def _complete(self, cell: Cell) -> bool:
        """Every trial of ``cell`` in the grid has finished (this session or before); under
        ``_lock``. A cell with a failed trial never is: it is drawn on the period and at the end."""
        unread = len(self._earlier[cell]) if cell in self._earlier else 0  # read when first drawn
        return len(self._curves.get(cell, ())) + unread >= self._size[cell]

    def _draw(self, cells: set[Cell]) -> None:
        began = time.thread_time()
        for cell in sorted(cells):
            try:
                self._draw_one(cell)
            except Exception as exc:  # noqa: BLE001 - a figure never stops the grid
                log.warning("albench: the figure of %s / %s was not drawn (%s)", *cell, exc)
        self.cpu_seconds += time.thread_time() - began

    def _draw_one(self, cell: Cell) -> None:
        earlier = self._earlier.pop(cell, None)
        if earlier:  # one bulk read per cell, the first time it is drawn
            histories = self.tracker.curves([run_id for _, run_id in earlier], [METRIC])
            with self._lock:
                for trial, run_id in earlier:
                    if histories[run_id][METRIC]:
                        self._curves[cell].setdefault(trial.trial_key, (trial, histories[run_id][METRIC]))
        with self._lock:
            self._dirty.discard(cell)
            self._drawn[cell] = time.monotonic()
            lines: dict[tuple[str, str], list] = defaultdict(list)
            for trial, curve in self._curves[cell].values():
                lines[(trial.strategy.label, trial.initial_pool.label)].append(curve)
        seeds = max(len(c) for c in lines.values())
        path = Path(self._folder.name) / FIGURE_NAME
        render(path, f"{cell[0]} / {cell[1]}: mean test {METRIC} and 95 % band over seeds "
                     f"(up to {seeds} finished)", dict(lines))
        if self.tracker.log_cell_figure(*cell, path):
            self.rendered += 1
        else:  # its run is not written yet: next time
            with self._lock:
                self._dirty.add(cell)
