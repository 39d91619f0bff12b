"""``build_report``: a grid's report folder, from its tracker (read only) and its plan.

``reports/<config name>/`` holds ``index.html`` (one self-contained page: plotly's JavaScript and
every figure inside it, nothing fetched), ``figures/`` (every static figure as PNG and SVG),
``results.parquet`` (one row per trial: keys, parameters, status, summary and AUC-family
metrics), ``curves.parquet`` (one row per trial and cycle), their data dictionary
(``schema.json`` and ``README.md``, from ``export``), ``stats.json`` (every test's inputs
and outputs, JSON-clean: no NaN, messages where something could not be computed) and
``quality.json`` (the cached embedding-quality measurements).
"""

from __future__ import annotations

import datetime
import json
import time
import traceback
from pathlib import Path

import pandas as pd

from orchestrator.report import export
from orchestrator.report import sections as section_modules
from orchestrator.report.context import Context
from orchestrator.report.data import ReportData
from orchestrator.report.page import Figures, Section, clean, esc, notes, page, safe_name
from orchestrator.report.quality import CACHE_NAME, measure
from orchestrator.tracking.base import masked
from workers.files import atomic_write


def default_report_dir(config, base: str | Path = ".") -> Path:
    """``<base>/reports/<config name>`` (the name made safe for a folder)."""
    return Path(base) / "reports" / safe_name(config.name)


def build_report(config, tracker, plan, out_dir: str | Path | None = None) -> Path:
    """Write the report of ``config``'s grid into ``out_dir`` (default ``reports/<name>``); its path.

    ``plan``: the grid's ``Plan`` (its trials, and its embedding jobs for the quality measurement)
    or just a list of its ``TrialSpec``. The tracker is only read, in bulk."""
    trials = list(plan.trials) if hasattr(plan, "trials") else list(plan)
    jobs = list(getattr(plan, "jobs", []) or [])
    out = Path(out_dir) if out_dir is not None else default_report_dir(config)
    out.mkdir(parents=True, exist_ok=True)
    calls_before = getattr(tracker, "calls", 0)
    began = time.perf_counter()
    data = ReportData.load(config, tracker, trials)
    read_seconds = time.perf_counter() - began
    calls = getattr(tracker, "calls", 0) - calls_before
    began_quality = time.perf_counter()
    if jobs:
        quality, quality_messages = measure(jobs, config.learner, config.store.path, out / CACHE_NAME)
    else:
        quality, quality_messages = pd.DataFrame(), ["no embedding jobs given: quality not measured"]
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    context = Context(config=config, data=data, figures=Figures(out / "figures"), quality=quality,
                      quality_messages=quality_messages, jobs=jobs,
                      meta={"date": date, "tracking_uri": masked(getattr(tracker, "uri", "")), "mlflow_calls": calls})
    built: list[Section] = []
    timings = {"read": round(read_seconds, 3), "quality_measurement": round(time.perf_counter() - began_quality, 3)}
    for module in section_modules.modules():
        began = time.perf_counter()
        try:
            built.append(module.build(context))
        except Exception as exc:  # noqa: BLE001 - one broken section must not cost the others
            trace = traceback.format_exc()
            built.append(Section(module.NAME, module.TITLE,
                                 notes([(f"this section could not be built ({type(exc).__name__}: {exc}); "
                                         "this is a bug in albench, please report it")]),
                                 {"error": f"{type(exc).__name__}: {exc}", "traceback": trace}))
        timings[built[-1].id] = round(time.perf_counter() - began, 3)
    finished = int((data.trials["status"] == "FINISHED").sum()) if not data.trials.empty else 0
    subtitle = (f"{esc(len(data.trials))} trials ({esc(finished)} finished), {len(data.datasets)} datasets x "
                f"{len(data.embedders)} embedders x {len(data.initial_pools)} initial pools x "
                f"{len(data.strategies)} strategies x {len(data.seeds)} seeds; built {esc(date)} by albench")
    html = page(f"albench report: {config.name}", subtitle, built, "")
    with atomic_write(out / "index.html") as temporary:
        temporary.write_text(html, encoding="utf-8")
    export.write(out, data.trials, data.curves)
    report_stats = {
        "config": config.name, "experiment": config.experiment_name, "date": date,
        "trials": len(data.trials), "finished": finished, "mlflow_calls": calls,
        "figures": context.figures.written, "seconds": timings,
        "sections": {s.id: {"title": s.title, **s.stats} for s in built},
    }
    text = json.dumps(clean(report_stats), indent=1, allow_nan=False)
    with atomic_write(out / "stats.json") as temporary:
        temporary.write_text(text)
    return out
