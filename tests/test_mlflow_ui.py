"""What the MLflow UI shows of a grid: the experiment's kind, each parent run's figure, the
report run (real Ray, real SQLite MLflow, real artifact store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from scipy import stats
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.config import parse_config
from orchestrator.report import grid_status
from orchestrator.report.cell_figures import FIGURE_NAME, mean_band
from orchestrator.report.publish import publish_report
from orchestrator.results import read_results
from orchestrator.resume import select_trials
from orchestrator.tracking import GROUP_TAG, open_tracker
from orchestrator.tracking.base import KIND_TAG, REPORT_KIND
from orchestrator.tracking.mlflow_backend import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, experiment_url
from tests.conftest import run_in_process, tiny_config, write_config

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def grid(ray_session, corpus, tmp_path_factory):
    """A tiny finished grid: 2 cells (one dataset, two embedders) x 2 strategies x 2 seeds."""
    workdir = tmp_path_factory.mktemp("ui-grid")
    config = tiny_config(corpus, workdir)
    plan, tracker, summary, _ = run_in_process(config)
    assert summary.finished == len(plan.trials) == 8 and not summary.failed
    return config, plan, tracker, workdir


def _parents(tracker):
    return tracker.client.search_runs([tracker.experiment_id], filter_string=f"tags.`{GROUP_TAG}` != ''")


def test_every_parent_run_carries_the_figure_of_its_cell(grid):
    _, _, tracker, workdir = grid
    parents = _parents(tracker)
    assert sorted(p.data.tags[GROUP_TAG] for p in parents) == ["topics / glove", "topics / tfidf"]
    for parent in parents:
        names = [a.path for a in tracker.client.list_artifacts(parent.info.run_id)]
        assert names == [FIGURE_NAME], names
        local = tracker.client.download_artifacts(parent.info.run_id, FIGURE_NAME, str(workdir))
        data = Path(local).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000


def test_the_band_is_students_t_interval_of_the_mean():
    rng = np.random.default_rng(3)
    values = rng.uniform(0.4, 0.9, size=(5, 4))
    curves = [[(10 * (j + 1), float(v)) for j, v in enumerate(row)] for row in values]
    curves[0].append((99, 0.1))  # a step only one curve has is left out
    steps, mean, low, high = mean_band(curves)
    assert list(steps) == [10, 20, 30, 40]
    expected = np.clip(stats.t.interval(0.95, 4, loc=values.mean(axis=0), scale=stats.sem(values, axis=0)), 0, 1)
    np.testing.assert_allclose(mean, values.mean(axis=0))
    np.testing.assert_allclose(low, expected[0])
    np.testing.assert_allclose(high, expected[1])


def test_the_experiment_is_a_machine_learning_one_new_or_existing(grid, tmp_path):
    _, _, tracker, _ = grid
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
    # an experiment made before albench set the tag gets it when a driver opens it, not when
    # a read-only command does
    uri = f"sqlite:///{tmp_path / 'old.db'}"
    old = MlflowClient(uri).create_experiment("old")
    assert EXPERIMENT_KIND_TAG not in MlflowClient(uri).get_experiment(old).tags
    open_tracker(uri, "old", create=False)
    assert EXPERIMENT_KIND_TAG not in MlflowClient(uri).get_experiment(old).tags
    open_tracker(uri, "old")
    assert MlflowClient(uri).get_experiment(old).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    assert (experiment_url("http://127.0.0.1:5000/", "7")
            == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning")


def _fake_report(folder, text):
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(f"<html><body>{text}</body></html>")
    (folder / "figures" / "curves.svg").write_text("<svg/>")
    (folder / "stats.json").write_text('{"tests": []}')
    return folder


def _status(config_path):
    result = CliRunner().invoke(app, ["status", str(config_path)])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_report_is_one_reused_run_that_status_resume_and_results_ignore(grid, tmp_path):
    config, plan, tracker, _ = grid
    parsed = parse_config(config)
    config_path = write_config(tmp_path / "tiny.yaml", config)
    before_status = _status(config_path)
    before_runs = {k: r.run_id for k, r in tracker.trial_runs().items()}
    before_table = read_results(tracker, plan.trials).trials

    report = _fake_report(tmp_path / "reports" / "tiny", "first")
    (report / "old.txt").write_text("only in the first report")
    run_id = publish_report(parsed, tracker, report)
    client = tracker.client
    run = client.get_run(run_id)
    assert run.data.tags[KIND_TAG] == REPORT_KIND and run.info.run_name == "report"
    assert run.info.status == "FINISHED" and run.info.experiment_id == tracker.experiment_id
    files = {a.path for a in client.list_artifacts(run_id)} | {
        a.path for a in client.list_artifacts(run_id, "figures")}
    assert files == {"index.html", "figures", "figures/curves.svg", "stats.json", "old.txt"}

    # a later report replaces the files of the same run
    (report / "old.txt").unlink()
    _fake_report(report, "second")
    assert publish_report(parsed, tracker, report) == run_id
    assert {a.path for a in client.list_artifacts(run_id)} == {"index.html", "figures", "stats.json"}
    index = client.download_artifacts(run_id, "index.html", str(tmp_path))
    assert "second" in Path(index).read_text()
    reports = client.search_runs([tracker.experiment_id], filter_string=f"tags.`{KIND_TAG}` = '{REPORT_KIND}'")
    assert [r.info.run_id for r in reports] == [run_id]

    # status, resume and results see the same trials as before
    assert _status(config_path) == before_status
    fresh = open_tracker(config["tracking"]["uri"], "tiny", create=False)
    runs = fresh.trial_runs(with_params=False)
    assert {k: r.run_id for k, r in runs.items()} == before_runs
    totals = grid_status(plan.trials, runs, driver_running=False).totals
    assert totals == {"done": 8, "failed": 0, "running": 0, "pending": 0}
    assert select_trials(plan.trials, runs) == ([], 8)
    after_table = read_results(fresh, plan.trials).trials
    assert after_table.equals(before_table)
    _, _, summary, _ = run_in_process(config)  # nothing to run: Ray is not even asked
    assert (summary.finished, summary.skipped) == (0, 8)


def test_a_folder_without_index_is_not_published(grid, tmp_path):
    config, _, tracker, _ = grid
    (tmp_path / "half").mkdir()
    with pytest.raises(ValueError, match="holds no index.html"):
        publish_report(parse_config(config), tracker, tmp_path / "half")


def test_the_report_replaces_its_files_through_an_mlflow_server(mlflow_server_postgres, tmp_path):
    """Against a server the artifacts go through its artifact proxy (HTTP), the same way."""
    tracker = open_tracker(mlflow_server_postgres.uri, "report-over-http")
    assert tracker.client.get_experiment(tracker.experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    report = _fake_report(tmp_path / "report", "first")
    (report / "old.txt").write_text("stale")
    run_id = tracker.publish_report(report)
    (report / "old.txt").unlink()
    _fake_report(report, "second")
    assert tracker.publish_report(report) == run_id
    client = tracker.client
    assert {a.path for a in client.list_artifacts(run_id)} == {"index.html", "figures", "stats.json"}
    assert "second" in Path(client.download_artifacts(run_id, "index.html", str(tmp_path))).read_text()
