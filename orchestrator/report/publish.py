"""The report in the MLflow UI: a built report folder logged as the artifacts of the grid's report run.

One run per experiment, named ``report`` and tagged ``albench.kind = report``, holds the latest
report (``index.html``, ``figures/``, the Parquet tables, ``stats.json``); a later report
replaces its files. The run carries no trial key, so ``albench status``, resume and the results
never count it. The tracker does the logging (``Tracker.publish_report``); this module checks
the folder and says which run holds it.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.config import ExperimentConfig
from orchestrator.tracking import Tracker

REPORT_INDEX = "index.html"


def publish_report(config: ExperimentConfig, tracker: Tracker, report_dir: Path) -> str:
    """Log ``report_dir`` (the report of ``config``'s grid) to the experiment's report run; its id.

    A folder without ``index.html`` is refused (a ValueError naming the folder): a half-built
    report must not replace the published one.
    """
    report_dir = Path(report_dir)
    if not (report_dir / REPORT_INDEX).is_file():
        raise ValueError(f"{report_dir} holds no {REPORT_INDEX}: not a built report of the grid "
                         f"{config.name!r}; fix: build it first (albench report CONFIG)")
    return tracker.publish_report(report_dir)


def open_in_browser(path: Path) -> str | None:
    """Open ``path`` in the default browser; None when it did, else why not and where the file is."""
    import os
    import sys
    import webbrowser

    where = path.resolve()
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return (f"not opened: no display (neither DISPLAY nor WAYLAND_DISPLAY is set); open {where} in a browser "
                "on a machine with a screen (copy the folder, or serve it: python -m http.server)")
    if not webbrowser.open(where.as_uri()):
        return f"not opened: Python's webbrowser module found no browser; open {where} yourself"
    return None
