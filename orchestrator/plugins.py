"""Every kind of plug-in in one place: the registries by entry-point group, what ``albench schema``
lists, the problems of plug-ins left out, and which plug-ins a trial uses.

Each kind's registry lives where the kind does (``strategies.registry``, ``workers.datasets``,
``workers.embedders``, ``workers.specs``, ``orchestrator.tracking``,
``orchestrator.report.sections``); this module only gathers them.
"""

from __future__ import annotations

from strategies import INITIAL_POOLS, QUERY_STRATEGIES
from strategies.registry import Registry
from workers.datasets import SOURCES
from workers.embedders import KINDS as EMBEDDER_KINDS
from workers.specs import LEARNERS, StrategySpec


def registries() -> dict[str, Registry]:
    """Entry-point group -> its registry, for every kind."""
    from orchestrator.report.sections import SECTIONS
    from orchestrator.tracking import BACKENDS

    found = (QUERY_STRATEGIES, INITIAL_POOLS, SOURCES, EMBEDDER_KINDS, LEARNERS, BACKENDS, SECTIONS)
    return {registry.group: registry for registry in found}


def problems() -> list[str]:
    """One line per installed plug-in that was left out (failed to import, or refused)."""
    found = []
    for registry in registries().values():
        registry.load_plugins()
        found.extend(registry.problems)
    return found


def listing() -> dict[str, dict[str, str]]:
    """Entry-point group -> name -> where it comes from (``albench`` or ``package==version``)."""
    return {group: {name: str(registry.origin(name)) for name in registry.names()}
            for group, registry in registries().items()}


def trial_plugins(dataset_source: str, embedder_kind: str, initial_pool: StrategySpec,
                  strategy: StrategySpec, learner: str) -> dict[str, str]:
    """The plug-ins one trial uses ('<group kind>.<name>' -> 'package==version'); albench's
    own are left out, so a trial of built-ins records none and keeps its key."""
    used = {"dataset_sources": (SOURCES, dataset_source), "embedders": (EMBEDDER_KINDS, embedder_kind),
            "initial_pools": (INITIAL_POOLS, initial_pool.name),
            "strategies": (QUERY_STRATEGIES, strategy.name), "learners": (LEARNERS, learner)}
    return {f"{kind}.{name}": str(origin) for kind, (registry, name) in used.items()
            if not (origin := registry.origin(name)).builtin}
