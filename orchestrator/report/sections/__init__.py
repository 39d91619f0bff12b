"""The report's sections, one module each, placed by name.

A section defines ``NAME`` (its id: the page anchor and its key in ``stats.json``), ``AFTER``
(the name of the section it follows; None for the first), ``TITLE`` (its heading, unnumbered:
the page numbers the sections once) and ``build(context) -> Section``: a figure, a short table
and plain words, plus the statistics it computed for ``stats.json``. Every section is registered
in ``SECTIONS``: the package's own modules by their module name, another package's through the
entry-point group ``albench.report_sections`` (its value: a class with ``TITLE``, a static
``build`` and, to be placed, ``AFTER``; without one it goes at the end). Adding a section takes
its module (saying where it goes) and its test.
"""

from __future__ import annotations

import pkgutil

from strategies.registry import PluginRefused, Registry


def _check(name: str, section: object) -> None:
    if not (isinstance(getattr(section, "TITLE", None), str) and callable(getattr(section, "build", None))):
        raise PluginRefused(f"{section!r} has no TITLE and build(context)")


SECTIONS = Registry("report section", "albench.report_sections", _check)
for _module in pkgutil.iter_modules(__path__):
    SECTIONS.lazy(_module.name, f"{__name__}.{_module.name}")


class SectionOrderError(ValueError):
    """Two sections claim one place, or a section follows one that does not exist."""


def order(places: dict[str, str | None]) -> list[str]:
    """Names in page order from ``places`` (name -> the name it follows, None for the first)."""
    following: dict[str | None, str] = {}
    for name, after in places.items():
        if after is not None and after not in places:
            raise SectionOrderError(f"section {name!r} follows {after!r}, which is no section")
        if after in following:
            raise SectionOrderError(f"sections {following[after]!r} and {name!r} both follow {after!r}")
        following[after] = name
    found, current = [], None
    while current in following:
        current = following[current]
        found.append(current)
    if len(found) != len(places):
        left = sorted(set(places) - set(found))
        raise SectionOrderError(f"sections {left} are not reached from the first one (a cycle)")
    return found


def modules() -> list:
    """Every section (module or plug-in class), in page order: each after the section its
    ``AFTER`` names; plug-ins that name none at the end, by name."""
    by_name = {getattr(section, "NAME", name): section for name, section in SECTIONS.items()}
    placed = {name: section.AFTER for name, section in by_name.items() if hasattr(section, "AFTER")}
    return [by_name[name] for name in order(placed) + sorted(set(by_name) - set(placed))]


def titles() -> list[str]:
    """Every section heading as the page shows it, numbered, in page order."""
    return [f"{i}. {m.TITLE}" for i, m in enumerate(modules(), 1)]
