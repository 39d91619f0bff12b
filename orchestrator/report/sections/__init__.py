"""The report's sections, one module each, in the order of their ``ORDER``.

A section module defines ``ORDER`` (its place in the page), ``TITLE`` (its heading) and
``build(context) -> Section``: a figure, a short table and plain words, plus the statistics it
computed for ``stats.json``. The package finds its modules itself: adding a section takes its
module and its test.
"""

from __future__ import annotations

import importlib
import pkgutil


def modules() -> list:
    """Every section module, in page order."""
    found = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]
    return sorted((m for m in found if hasattr(m, "build")), key=lambda m: m.ORDER)


def titles() -> list[str]:
    """Every section heading, in page order (the Chromium test checks each is in the page)."""
    return [m.TITLE for m in modules()]
