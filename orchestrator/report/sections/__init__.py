"""The report's sections, one module each, placed by name.

A section module defines ``NAME`` (its id: the page anchor and its key in ``stats.json``),
``AFTER`` (the name of the section it follows; None for the first), ``TITLE`` (its heading,
unnumbered: the page numbers the sections once) and ``build(context) -> Section``: a figure, a
short table and plain words, plus the statistics it computed for ``stats.json``. The package
finds its modules itself: adding a section takes its module (saying where it goes) and its test.
"""

from __future__ import annotations

import importlib
import pkgutil


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
    """Every section module, in page order."""
    found = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]
    by_name = {m.NAME: m for m in found if hasattr(m, "build")}
    return [by_name[name] for name in order({name: m.AFTER for name, m in by_name.items()})]


def titles() -> list[str]:
    """Every section heading as the page shows it, numbered, in page order."""
    return [f"{i}. {m.TITLE}" for i, m in enumerate(modules(), 1)]
