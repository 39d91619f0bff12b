"""The HTML report of a real finished tiny grid (real Ray, real SQLite MLflow), opened in a real
headless Chromium; partial grids and bad input give messages, never a crash or a NaN."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

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
    quality = {(q["dataset"], q["embedder"]): q["accuracy"] for q in stats["sections"]["quality"]["quality"]}
    assert set(quality) == {("topics", "tfidf"), ("topics", "glove")} and all(0.5 < v <= 1 for v in quality.values())
    chosen = stats["sections"]["provenance"]["learner_C"]
    assert {(c["dataset"], c["embedder"]) for c in chosen} == set(quality) and all(c["median C"] in grid_C for c in chosen)
    pools = stats["sections"]["initial-pool"]["gains"]
    assert {p["initial_pool"] for p in pools} == {"typiclust"} and len(pools) == 6  # (2 embedders + all) x 2 metrics


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


def test_critical_difference_groups():
    from orchestrator.report.sections.comparison import cliques

    ranks = {"a": 1.2, "b": 1.9, "c": 2.9, "d": 4.0}
    p = {"a": {"b": 0.4, "c": 0.01, "d": 0.001}, "b": {"a": 0.4, "c": 0.2, "d": 0.01},
         "c": {"a": 0.01, "b": 0.2, "d": 0.3}, "d": {"a": 0.001, "b": 0.01, "c": 0.3}}
    assert cliques(ranks, p) == [["a", "b"], ["b", "c"], ["c", "d"]]
    p["a"]["c"] = p["c"]["a"] = 0.5
    assert cliques(ranks, p) == [["a", "b", "c"], ["c", "d"]]


# ---------------------------------------------------------------- issue 24: answers first, never overclaims
def test_the_answer_comes_first_and_sections_are_numbered_once(report):
    html = (report / "index.html").read_text()
    stats = _no_nan((report / "stats.json").read_text())
    assert next(iter(stats["sections"])) == "what-to-use" and titles()[0] == "1. What to use"
    toc = re.findall(r'<nav><ol>(.*?)</ol></nav>', html)[0]
    assert not re.search(r'">\d+\.', toc), "the table of contents numbers a numbered title again"
    answer = stats["sections"]["what-to-use"]
    scopes = {a["scope"]: a for a in answer["answers"]}
    assert set(scopes) == {"all embedders", "embedder tfidf", "embedder glove"}
    every = scopes["all embedders"]
    assert every["use"] in {"random", "margin"} and every["unit"] == "problem" and every["problems"] == 2
    assert not every["power"]["can_reach_alpha"] and "cannot separate any two strategies" in answer["decide"]
    assert answer["other_metric"][0]["metric"] == "auc_macro_f1"  # the other metric's headline beside it
    assert "<td>None</td>" not in html and "message = None" not in html


def test_each_section_says_which_initial_pool(report):
    stats = _no_nan((report / "stats.json").read_text())["sections"]
    for name in ("what-to-use", "curves", "auc", "comparison", "heatmap", "quality", "cost"):
        assert stats[name]["initial_pool"] == "random", name
    assert stats["initial-pool"]["initial_pool"] == ["random", "typiclust"]


def test_initial_pool_units_share_no_pool_draw(report):
    """Strategies of one dataset share each seed's pool draw: one unit per dataset, not per strategy."""
    gains = _no_nan((report / "stats.json").read_text())["sections"]["initial-pool"]["gains"]
    per_embedder = [g for g in gains if g["embedder"] != "all embedders"]
    assert per_embedder and all(g["units"] == 1 and g["unit"] == "dataset" and g["ci_low"] is None
                                for g in per_embedder)
    assert all(g["units"] == 2 and g["unit"] == "problem" for g in gains if g["embedder"] == "all embedders")


def test_pairwise_tables_state_their_power(report):
    comparisons = _no_nan((report / "stats.json").read_text())["sections"]["comparison"]["comparisons"]
    for found in comparisons.values():
        assert found["power"]["min_adjusted_p"] >= 0.05 and found["power"]["problems_needed"] == 6
    html = (report / "index.html").read_text()
    assert "counts, not a test" in html and "win/tie/loss over problems" not in html  # never an all-ties table


def test_report_metric_macro_f1(grid, tmp_path):
    config, _, tracker, _ = grid
    _, stats, html = _variant(config, tracker, tmp_path, report={"metric": "macro_f1"})
    answer = stats["sections"]["what-to-use"]
    assert {a["metric"] for a in answer["answers"]} == {"auc_macro_f1"}
    assert {a["metric"] for a in answer["other_metric"]} == {"auc_accuracy"}
    assert stats["sections"]["curves"]["metric"] == "macro_f1" and stats["sections"]["comparison"]["metric"] == \
        "auc_macro_f1"
    assert "In accuracy instead (the other metric)" in html


def test_exports_are_typed_and_described(report):
    results = pd.read_parquet(report / "results.parquet")
    assert pd.api.types.is_integer_dtype(results["param.protocol.cycles"])
    assert not any((results[c].astype(str) == "None").any() for c in results.columns)
    schema = json.loads((report / "schema.json").read_text())
    assert {c["column"] for c in schema["results.parquet"]} == set(results.columns)
    assert all(c["meaning"] for file in schema.values() for c in file), "a column without meaning"
    assert "last_cycle.accuracy" in results and (report / "README.md").read_text().startswith("# The report")
    from orchestrator.report.export import DICTIONARY

    docs = (Path(__file__).parent.parent / "docs" / "report-data.md").read_text()
    assert all(f"`{name}`" in docs for name, _, _ in DICTIONARY)
    keys = json.loads((report / "quality.json").read_text())
    assert all(key.startswith(("topics / tfidf / store ", "topics / glove / store ")) for key in keys)


def test_page_reads_at_1000px_with_one_figure_per_panel(report):
    legend = ("(async () => { const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));"
              " const item = plots[0].querySelector('.legendtoggle');"
              " const r = item.getBoundingClientRect(); const at = {clientX: r.x + 5, clientY: r.y + 5, bubbles: true};"
              " item.dispatchEvent(new MouseEvent('mousedown', at)); item.dispatchEvent(new MouseEvent('mouseup', at));"
              " await new Promise(done => setTimeout(done, 800));"
              " const name = plots[0].data.find(t => t.showlegend !== false).legendgroup;"
              " return plots.map(gd => gd.data.filter(t => t.legendgroup === name).map(t => t.visible)); })()")
    page = open_page((report / "index.html").as_uri(), {
        "sideways": "document.documentElement.scrollWidth - document.documentElement.clientWidth",
        "plots": "document.querySelectorAll('.js-plotly-plot').length",
        "plot_titles": "document.querySelectorAll('.js-plotly-plot .gtitle').length",
        "panel_titles": "document.querySelectorAll('.panel > h4').length",
        "static_curves": "document.querySelectorAll('figure.static svg[aria-label^=\"The same panels\"]').length",
        "downloads": "Array.from(document.querySelectorAll('#curves a[download]')).map(a => a.getAttribute('href'))",
        "legend": legend,
    }, width=1000)
    assert page.exceptions == [] and page.console_errors == []
    assert page.values["sideways"] <= 0, "the page scrolls sideways at 1,000 px"
    assert page.values["plots"] == page.values["panel_titles"] == 2  # one figure per (dataset, embedder)
    assert page.values["plot_titles"] == 0  # titles sit above the plot, where the toolbar cannot cover them
    assert page.values["static_curves"] == 0
    assert page.values["downloads"] == ["figures/learning_curves.png", "figures/learning_curves.svg"]
    hidden = page.values["legend"]
    assert len(hidden) == 2 and all(v == "legendonly" for panel in hidden for v in panel), hidden


def test_mlflow_durations_are_the_work(grid, report):
    _, _, tracker, _ = grid
    client, experiment = tracker.client, tracker.experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    curves = pd.read_parquet(report / "curves.parquet")
    first = curves["step"] == curves.groupby("trial_key")["step"].transform("min")
    own = curves["fit_seconds"] + curves["query_seconds"].where(~first, 0.0)  # a pool may come from the cache
    work = own.groupby(curves["trial_key"]).sum()
    trials = {r.data.tags["albench.trial_key"]: r for r in runs if "albench.trial_key" in r.data.tags}
    assert trials
    for key, run in trials.items():
        assert run.info.end_time - run.info.start_time >= 1000 * work[key] - 5, key  # start: its first cycle
    for parent in (r for r in runs if "albench.group" in r.data.tags):
        children = [r for r in trials.values() if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert children
        assert parent.info.start_time <= min(c.info.start_time for c in children)
        assert parent.info.end_time >= max(c.info.end_time for c in children)
    stage = [r for r in runs if r.data.tags.get("albench.kind") == "embedding"]
    assert stage and all(r.info.end_time - r.info.start_time >= 1000 * sum(
        v for k, v in r.data.metrics.items() if k.endswith("/seconds")) - 5 for r in stage)


def test_open_without_a_display_says_why(grid, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    path = write_config(tmp_path / "grid.yaml", grid[0])
    result = CliRunner().invoke(app, ["report", str(path), "--out", str(tmp_path / "out"), "--open"])
    assert result.exit_code == 0, result.output
    assert "not opened: no display" in result.output and str(tmp_path / "out" / "index.html") in \
        result.output.replace("\n", "")
