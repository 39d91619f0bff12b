"""The HTML report of a real finished tiny grid (real Ray, real SQLite MLflow), opened in a real
headless Chromium; partial grids and bad input give messages, never a crash or a NaN."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from orchestrator.config import parse_config
from orchestrator.grid import prepare_plan
from orchestrator.report.build import build_report
from orchestrator.report.sections import titles
from orchestrator.tracking import open_tracker
from tests.browser import open_page
from tests.conftest import run_in_process, tiny_config, write_config


def _no_nan(text: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"stats.json holds {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def grid(ray_session, corpus, tmp_path_factory):
    """1 dataset x 2 embedders x 2 initial pools (random, typiclust) x 2 strategies x 2 seeds."""
    workdir = tmp_path_factory.mktemp("report-grid")
    config = tiny_config(corpus, workdir, initial_pools=[{"name": "random"}, {"name": "typiclust"}])
    plan, tracker, summary, _ = run_in_process(config)
    assert summary.finished == len(plan.trials) == 16 and not summary.failed
    return config, plan, tracker, workdir


@pytest.fixture(scope="module")
def report(grid):
    _, plan, tracker, workdir = grid
    return build_report(plan.config, tracker, plan, workdir / "reports" / "tiny")


def _variant(config: dict, tracker, tmp_path, **changes):
    """The report of the same runs seen through a config that differs in ``changes``."""
    variant = parse_config(dict(config, **changes))
    plan = prepare_plan(variant, writing=False)
    out = build_report(variant, tracker, plan, tmp_path / "report")
    return out, _no_nan((out / "stats.json").read_text()), (out / "index.html").read_text()


def test_report_opens_offline_in_chromium(report):
    page = open_page((report / "index.html").as_uri(), {
        "headings": "Array.from(document.querySelectorAll('h2')).map(h => h.textContent)",
        "plots": "document.querySelectorAll('.js-plotly-plot .main-svg').length",
        "svgs": "document.querySelectorAll('figure.static svg').length",
    })
    assert page.console_errors == [] and page.exceptions == []
    # inline figures may hold data: URLs (a raster inside an SVG): part of the page, not a request out
    fetched = [url for url in page.requests if not url.startswith("data:")]
    assert fetched == [page.url], "the page fetched something besides itself"
    assert page.failed == []
    assert page.values["headings"] == titles()
    assert page.values["plots"] >= 2  # one interactive learning-curve figure per (dataset, embedder)
    assert page.values["svgs"] >= 6


def test_report_files(report, grid):
    _, plan, _, _ = grid
    results = pd.read_parquet(report / "results.parquet")
    assert len(results) == len(plan.trials) and set(results["status"]) == {"FINISHED"}
    for column in ("trial_key", "dataset", "embedder", "initial_pool", "strategy", "seed", "param.protocol.cycles",
                   "auc_accuracy", "early_auc_accuracy", "late_auc_accuracy", "final_macro_f1",
                   "strategy_query_seconds"):
        assert column in results, column
    curves = pd.read_parquet(report / "curves.parquet")
    assert len(curves) == len(plan.trials) * 4 and {"strategy", "step", "accuracy"} <= set(curves.columns)
    grid_C = set(plan.config.learner.C_grid)  # the learner's C of every cycle, searched or reused
    assert set(curves["learner_C"]) <= grid_C and set(curves["learner_searched"]) <= {0.0, 1.0}
    assert (curves.loc[curves["step"] == curves["step"].min(), "learner_searched"] == 1).all()
    stats = _no_nan((report / "stats.json").read_text())
    assert not [s for s in stats["sections"].values() if "error" in s]
    assert stats["sections"]["comparison"]["sample_unit"].startswith("a problem = dataset x embedder")
    for figure in stats["figures"]:
        assert (report / "figures" / figure).stat().st_size > 1000
    assert {"learning_curves.png", "learning_curves.svg", "cd_all-embedders.svg", "heatmap_gain.png",
            "initial_pool.svg", "quality_vs_gain.png", "cost.svg"} <= set(stats["figures"])
    quality = {(q["dataset"], q["embedder"]): q["quality"] for q in stats["sections"]["quality"]["quality"]}
    assert set(quality) == {("topics", "tfidf"), ("topics", "glove")} and all(0.5 < v <= 1 for v in quality.values())
    chosen = stats["sections"]["provenance"]["learner_C"]
    assert {(c["dataset"], c["embedder"]) for c in chosen} == set(quality) and all(c["median C"] in grid_C for c in chosen)
    pools = stats["sections"]["initial-pool"]["gains"]
    assert {p["initial_pool"] for p in pools} == {"typiclust"} and len(pools) == 4  # 2 embedders x 2 metrics


def test_quality_is_measured_once(report, grid):
    _, plan, tracker, _ = grid
    cache = report / "quality.json"
    before = cache.stat().st_mtime_ns
    build_report(plan.config, tracker, plan, report)
    stats = _no_nan((report / "stats.json").read_text())
    assert all(q for q in stats["sections"]["quality"]["quality"])
    assert cache.stat().st_mtime_ns == before  # nothing refitted, nothing rewritten


def test_incomplete_cell_is_marked_and_not_drawn(grid, tmp_path):
    config, _, tracker, _ = grid
    variant = parse_config(dict(config, seeds=[0, 1, 2]))
    plan = prepare_plan(variant, writing=False)
    # only one cell gets the third seed (never run): that cell alone is incomplete
    trials = [t for t in plan.trials if t.seed < 2 or (t.embedder == "tfidf" and t.strategy.name == "margin"
                                                         and t.initial_pool.name == "random")]
    out = build_report(variant, tracker, trials, tmp_path / "partial")
    stats = _no_nan((out / "stats.json").read_text())
    incomplete = stats["sections"]["status"]["incomplete_cells"]
    assert [(c["embedder"], c["strategy"], c["initial_pool"], c["finished"], c["missing"]) for c in incomplete] \
        == [("tfidf", "margin", "random", 2, 1)]
    drawn = {(c["embedder"], c["strategy"]) for c in stats["sections"]["curves"]["curves"]}
    assert ("tfidf", "margin") not in drawn and ("glove", "margin") in drawn
    gains = stats["sections"]["auc"]["gains"]["auc_accuracy"]["per_problem"]
    assert {(g["embedder"], g["strategy"]) for g in gains} == {("glove", "margin")}
    assert "not drawn (incomplete: 2 of 3 seeds finished)" in (out / "index.html").read_text()


def test_no_finished_trials(corpus, tmp_path):
    config = tiny_config(corpus, tmp_path)
    parsed = parse_config(config)
    tracker = open_tracker(parsed.tracking.uri, parsed.experiment_name, create=False)  # no store at all
    out = build_report(parsed, tracker, prepare_plan(parsed, writing=False), tmp_path / "empty")
    stats = _no_nan((out / "stats.json").read_text())
    assert stats["finished"] == 0 and not [s for s in stats["sections"].values() if "error" in s]
    assert "no finished trials yet" in stats["sections"]["status"]["messages"][0]
    html = (out / "index.html").read_text()
    assert all(title in html for title in titles())
    assert not (tmp_path / "mlflow.db").exists()  # read-only: nothing created
    assert len(pd.read_parquet(out / "results.parquet")) == len(parsed.seeds) * 4


def test_one_seed_says_no_ci(grid, tmp_path):
    config, _, tracker, _ = grid
    _, stats, _ = _variant(config, tracker, tmp_path, seeds=[0])
    assert not [s for s in stats["sections"].values() if "error" in s]
    assert any("one seed" in m for m in stats["sections"]["status"]["messages"])
    assert any("one seed, no confidence interval" in m for m in stats["sections"]["auc"]["messages"])
    curves = stats["sections"]["curves"]["curves"]
    assert curves and all(low is None for c in curves for low in c["low"])  # no band, not a NaN band


def test_missing_random_says_so(grid, tmp_path):
    config, _, tracker, _ = grid
    _, stats, html = _variant(config, tracker, tmp_path, strategies=[{"name": "margin"}])
    assert "no finished 'random' trials" in " ".join(stats["sections"]["auc"]["messages"])
    assert "gains over random cannot be computed" in html
    assert not [s for s in stats["sections"].values() if "error" in s]


def test_cli_report_and_run_builds_it(grid, tmp_path):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    config = grid[0]
    path = write_config(tmp_path / "grid.yaml", config)  # its paths are absolute: the same grid
    result = CliRunner().invoke(app, ["report", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "index.html").is_file() and "index.html" in result.output
    assert "report logged to MLflow" in result.output
    tracker = grid[2]  # the report run holds the report, and is no trial
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.`albench.kind` = 'report'")
    assert len(runs) == 1
    assert "index.html" in {f.path for f in tracker.client.list_artifacts(runs[0].info.run_id)}
    assert runs[0].info.run_id not in {r.run_id for r in tracker.all_trial_runs()}
    result = CliRunner().invoke(app, ["run", str(path), "--no-report"])  # every trial done: nothing runs
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "reports").exists()
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "tiny" / "index.html").is_file()


def test_status_does_not_import_the_report():
    code = ("import sys, orchestrator.cli; from orchestrator.report import grid_status; "
            "print(sorted(m for m in ('matplotlib', 'plotly', 'orchestrator.report.build') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_spearman_bootstrap_is_scipy_on_every_resample():
    import numpy as np
    from scipy import stats as sps

    from orchestrator.report import stats

    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    y = x + rng.normal(size=12)
    y[:4] = y[0]  # ties
    found = stats.spearman_ci(x, y, n_boot=300, seed=5)
    index = np.random.default_rng(5).integers(0, 12, size=(300, 12))
    boots = [sps.spearmanr(x[i], y[i]).statistic for i in index if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0]
    assert found["rho"] == pytest.approx(sps.spearmanr(x, y).statistic)
    assert found["ci"] == pytest.approx(list(np.quantile(boots, [0.025, 0.975])))


def test_critical_difference_groups():
    from orchestrator.report.sections.comparison import cliques

    ranks = {"a": 1.2, "b": 1.9, "c": 2.9, "d": 4.0}
    p = {"a": {"b": 0.4, "c": 0.01, "d": 0.001}, "b": {"a": 0.4, "c": 0.2, "d": 0.01},
         "c": {"a": 0.01, "b": 0.2, "d": 0.3}, "d": {"a": 0.001, "b": 0.01, "c": 0.3}}
    assert cliques(ranks, p) == [["a", "b"], ["b", "c"], ["c", "d"]]
    p["a"]["c"] = p["c"]["a"] = 0.5
    assert cliques(ranks, p) == [["a", "b", "c"], ["c", "d"]]
