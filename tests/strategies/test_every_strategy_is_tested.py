"""Every registered strategy and initial pool has a conformance test class."""

from __future__ import annotations

import importlib
import pkgutil

import tests.strategies
from tests.strategies.conformance import StrategyConformance, all_registered


def test_every_registered_name_has_a_conformance_class():
    for module in pkgutil.iter_modules(tests.strategies.__path__):
        if module.name.startswith("test_"):
            importlib.import_module(f"tests.strategies.{module.name}")
    covered = set()
    stack = list(StrategyConformance.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.strategy_name:
            covered.add((cls.strategy_name, cls.registry.role))
    missing = [(name, registry.role) for name, registry in all_registered()
               if (name, registry.role) not in covered]
    assert not missing, f"strategies without a conformance test class: {missing}"
