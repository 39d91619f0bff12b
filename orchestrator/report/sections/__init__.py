"""The report's sections, one module each, in the order of their ``ORDER``.

A section module defines ``ORDER`` (its place in the page), ``TITLE`` (its heading) and
``build(context) -> Section``: a figure, a short table and plain words, plus the statistics it
computed for ``stats.json``. Every section is registered in ``SECTIONS``: the package's own
modules by their module name, another package's through the entry-point group
``albench.report_sections`` (its value: a class with ``TITLE``, ``ORDER`` and a static ``build``).
"""

from __future__ import annotations

import math
import pkgutil

from strategies.registry import PluginRefused, Registry


def _check(name: str, section: object) -> None:
    if not (isinstance(getattr(section, "TITLE", None), str) and callable(getattr(section, "build", None))):
        raise PluginRefused(f"{section!r} has no TITLE and build(context)")


SECTIONS = Registry("report section", "albench.report_sections", _check)
for _module in pkgutil.iter_modules(__path__):
    SECTIONS.lazy(_module.name, f"{__name__}.{_module.name}")


def modules() -> list:
    """Every section (module or plug-in class), in page order."""
    return sorted(SECTIONS.values(), key=lambda m: getattr(m, "ORDER", math.inf))


def titles() -> list[str]:
    """Every section heading, in page order (the Chromium test checks each is in the page)."""
    return [m.TITLE for m in modules()]
