"""Screenshots of a built report in the tests' headless Chromium: the first screen and every
section, at 1,000 and 1,400 px wide (``docs/report-*.png``).

    python -m tests.screenshots reports/albench-default docs
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator.report.sections import modules
from tests.browser import open_page

WIDTHS = (1000, 1400)


def take(report: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    taken = []
    for width in WIDTHS:
        shots = {str(out / f"report-{width}-first-screen.png"): "viewport"}
        shots.update({str(out / f"report-{width}-{i:02d}-{m.NAME}.png"): f"#{m.NAME}"
                      for i, m in enumerate(modules(), 1)})
        page = open_page((report / "index.html").resolve().as_uri(), {}, width=width, height=900, settle=3.0,
                         shots=shots)
        if page.exceptions or page.console_errors:
            raise RuntimeError(f"the page has errors: {page.exceptions + page.console_errors}")
        taken += [Path(p) for p in shots]
    return taken


if __name__ == "__main__":
    for path in take(Path(sys.argv[1]), Path(sys.argv[2])):
        print(path)
