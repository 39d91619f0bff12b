"""Registries of query strategies and initial-pool selectors, filled by decorators.

A strategy module registers its class where it is defined; nothing dispatches on names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from strategies.base import QueryStrategy, StrategyError, StrategyParamError
from strategies.params import check_params

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
            if vars(cls).get("registered_name") not in (None, name):
                raise ValueError(f"{cls.__name__} is registered as {cls.registered_name!r} already")
            self._classes[name] = cls
            cls.registered_name = name
            return cls

        return decorate

    def get(self, name: str) -> type[QueryStrategy]:
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.role} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def create(self, name: str, params: Mapping[str, Any] | None = None) -> QueryStrategy:
        """The strategy ``name`` built with ``params``, validated: ``UnknownNameError`` for an
        unknown name, else one ``StrategyParamError`` listing every unknown or invalid
        parameter (``problems``: (parameter, message) pairs)."""
        cls = self.get(name)
        values, problems = check_params(cls, dict(params or {}))
        if problems:
            raise StrategyParamError(name, problems)
        return cls(**values)

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def items(self) -> list[tuple[str, type[QueryStrategy]]]:
        return sorted(self._classes.items())


QUERY_STRATEGIES = Registry("query strategy")
INITIAL_POOLS = Registry("initial pool")

register_initial_pool = INITIAL_POOLS.register


def register_query_strategy(name: str, *, initial_pool: bool = False) -> Callable[[S], S]:
    """Class decorator: the class is the query strategy ``name``, and also the initial pool
    ``name`` when ``initial_pool`` (a cold-start strategy usable in both roles)."""

    def decorate(cls: S) -> S:
        QUERY_STRATEGIES.register(name)(cls)
        if initial_pool:
            INITIAL_POOLS.register(name)(cls)
        return cls

    return decorate
