"""When the parent runs' figures are drawn: a complete cell at once, a running one on the period,
what is left at the end (real SQLite MLflow, real Parquet grid, real matplotlib)."""

from __future__ import annotations

from orchestrator.config import parse_config
from orchestrator.grid import prepare_plan
from orchestrator.report.cell_figures import METRIC, CellFigures
from orchestrator.tracking import TRIAL_KEY_TAG, TrialRun, open_tracker
from tests.conftest import tiny_config


def _grid(corpus, tmp_path):
    """The tiny grid's 8 trials (2 cells of 4) and a tracker with both parent runs."""
    config = parse_config(tiny_config(corpus, tmp_path))
    plan = prepare_plan(config)
    tracker = open_tracker(config.tracking.uri, config.experiment_name)
    cells: dict[tuple[str, str], list] = {}
    for trial in plan.trials:
        cells.setdefault((trial.dataset, trial.embedder), []).append(trial)
        tracker.parent_run(trial.dataset, trial.embedder)
    assert sorted(len(c) for c in cells.values()) == [4, 4]
    return tracker, plan.trials, list(cells.values())


def _curve(value: float) -> dict[int, float]:
    return {6: value, 12: value + 0.1, 18: value + 0.2}


def _settle(figures: CellFigures) -> None:
    if figures._job is not None:
        figures._job.result()


def test_a_complete_cell_is_drawn_at_once_a_running_one_on_the_period(corpus, tmp_path):
    tracker, trials, (first, second) = _grid(corpus, tmp_path)
    figures = CellFigures(tracker, trials, {}, refresh_seconds=3600)
    for trial in first[:3]:
        figures.add(trial, _curve(0.5))
    figures.add(second[0], _curve(0.4))
    figures.tick()
    _settle(figures)
    assert figures.rendered == 0  # both cells still running, and the period not yet up

    figures.add(first[3], _curve(0.6))  # the first cell's last trial
    figures.tick()
    _settle(figures)
    assert figures.rendered == 1
    figures.tick()  # nothing new: not drawn again
    _settle(figures)
    assert figures.rendered == 1

    figures.refresh_seconds = 0  # the period is up: the running cell is drawn too
    figures.tick()
    _settle(figures)
    assert figures.rendered == 2

    figures.add(second[1], _curve(0.45))
    figures.close()  # what is out of date is drawn once more at the end
    assert figures.rendered == 3
    parents = {tracker.parent_run(t.dataset, t.embedder) for t in trials}
    for run_id in parents:
        assert [a.path for a in tracker.client.list_artifacts(run_id)] == ["curves.png"]


def test_trials_finished_in_an_earlier_session_count_toward_a_complete_cell(corpus, tmp_path):
    tracker, trials, (first, _) = _grid(corpus, tmp_path)
    existing = {}
    for trial in first[:3]:  # finished before this session, with their curves in the tracker
        run = tracker.client.create_run(tracker.experiment_id, tags={TRIAL_KEY_TAG: trial.trial_key})
        for step, value in _curve(0.5).items():
            tracker.client.log_metric(run.info.run_id, METRIC, value, step=step)
        tracker.client.set_terminated(run.info.run_id, "FINISHED")
        existing[trial.trial_key] = TrialRun(run.info.run_id, "FINISHED", trial.trial_key, {}, {})
    figures = CellFigures(tracker, trials, existing, refresh_seconds=3600)
    figures.tick()
    assert figures._job is None  # nothing new this session: nothing to draw
    figures.add(first[3], _curve(0.6))
    figures.tick()
    _settle(figures)
    assert figures.rendered == 1
    lines = figures._curves[(first[3].dataset, first[3].embedder)]
    assert len(lines) == 4  # the three earlier curves were read for it
    figures.close()
    assert figures.rendered == 1


def test_two_initial_pools_get_one_panel_each(tmp_path):
    """12 lines in one panel overlapped in style; now each pool has its panel, one colour per
    strategy in both, random dashed."""
    import matplotlib.image

    from orchestrator.report import cell_figures

    curves = [sorted(_curve(0.5).items()), sorted(_curve(0.55).items())]
    lines = {(s, p): curves for s in ("random", "margin", "entropy") for p in ("random", "typiclust")}
    drawn = []
    original = cell_figures.draw
    cell_figures.draw = lambda axes, *a, **k: (drawn.append((id(axes), k["color"], k["linestyle"])),
                                                original(axes, *a, **k))
    try:
        cell_figures.render(tmp_path / "two.png", "two pools", lines)
        cell_figures.render(tmp_path / "one.png", "one pool", {k: v for k, v in lines.items() if k[1] == "random"})
    finally:
        cell_figures.draw = original
    two = drawn[:6]
    assert len({axes for axes, _, _ in two}) == 2  # one panel per initial pool
    for axes in {a for a, _, _ in two}:
        styles = [(color, style) for a, color, style in two if a == axes]
        assert len(set(styles)) == 3  # distinct within a panel
    assert {(c, s) for a, c, s in two if a == two[0][0]} == {(c, s) for a, c, s in two if a == two[-1][0]}
    assert matplotlib.image.imread(tmp_path / "two.png").shape[1] > 1.5 * matplotlib.image.imread(
        tmp_path / "one.png").shape[1]
