"""Registries of query strategies and initial-pool selectors, filled by decorators.

A strategy module registers its class where it is defined; nothing dispatches on names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from strategies.base import QueryStrategy, StrategyError

S = TypeVar("S", bound=type[QueryStrategy])


class UnknownNameError(StrategyError):
    """A name that no registered strategy has."""


class Registry:
    """Maps names to strategy classes of one role (query strategy or initial pool)."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._classes: dict[str, type[QueryStrategy]] = {}

    def register(self, name: str) -> Callable[[S], S]:
        """Class decorator: make the class available under ``name``."""

        def decorate(cls: S) -> S:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.role} {name!r} is registered twice")
            self._classes[name] = cls
            return cls

        return decorate

    def get(self, name: str) -> type[QueryStrategy]:
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.role} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def items(self) -> list[tuple[str, type[QueryStrategy]]]:
        return sorted(self._classes.items())


QUERY_STRATEGIES = Registry("query strategy")
INITIAL_POOLS = Registry("initial pool")

register_query_strategy = QUERY_STRATEGIES.register
register_initial_pool = INITIAL_POOLS.register
