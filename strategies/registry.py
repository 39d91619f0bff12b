"""One registry class for every kind of plug-in, and the registries of strategies.

A ``Registry`` maps names to the things of one kind (strategy classes, dataset sources, learner
specs, embedder kinds, tracking backends, report sections). Built-ins register themselves where
they are defined (a decorator, a subclass hook, or ``lazy("module:attr")`` for one imported on
first use); third-party packages add theirs through the kind's entry-point group
(``albench.strategies``, ...: the entry point's name is the plug-in's name, its value the class),
read once, when a name is first looked up. A plug-in that fails to import or is refused by the
kind's ``check`` is left out with one message naming its package (``problems``): it never breaks
the built-ins. It lives in the lowest layer so that every layer can hold a registry.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from strategies.base import QueryStrategy, StrategyError, StrategyParamError
from strategies.params import check_params

T = TypeVar("T")
S = TypeVar("S", bound=type[QueryStrategy])

BUILTIN_PACKAGE = "albench"
ALBENCH_PACKAGES = ("strategies", "workers", "orchestrator")


class UnknownNameError(StrategyError):
    """A name that nothing of the kind is registered under."""


class PluginRefused(ValueError):
    """A thing the kind's ``check`` refuses (the message says why and the fix)."""


@dataclass(frozen=True)
class Origin:
    """Where a registered thing comes from: albench itself, or an installed distribution."""

    package: str = BUILTIN_PACKAGE
    version: str = ""

    @property
    def builtin(self) -> bool:
        return self.package == BUILTIN_PACKAGE

    def __str__(self) -> str:
        return f"{self.package}=={self.version}" if self.version else self.package


BUILTIN = Origin()


class Registry(Generic[T]):
    """Names -> things of one kind (``kind`` in messages, ``group``: its entry-point group).

    ``check(name, thing)`` raises ``PluginRefused`` for a thing the kind cannot take; it runs
    for built-ins and plug-ins alike, at registration.
    """

    def __init__(self, kind: str, group: str, check: Callable[[str, Any], None] | None = None) -> None:
        self.kind = kind
        self.group = group
        self.check = check
        self._things: dict[str, Any] = {}
        self._lazy: dict[str, str] = {}
        self._origins: dict[str, Origin] = {}
        self._plugins_read = False
        self.problems: list[str] = []
        """One line per plug-in left out (import failed or refused), naming its package."""

    # ------------------------------------------------------------------------ registering

    def add(self, name: str, thing: T, origin: Origin = BUILTIN) -> T:
        """Register ``thing`` under ``name``; ``PluginRefused`` if the kind's check refuses it
        or the name is taken by something else."""
        present = self._things.get(name)
        if (present is not None and present is not thing) or name in self._lazy:
            raise PluginRefused(f"{self.kind} {name!r} is registered twice (already by "
                                f"{self._origins[name]})")
        if self.check is not None:
            self.check(name, thing)
        self._things[name] = thing
        if present is None or not origin.builtin:  # a plug-in that registered itself on import
            self._origins[name] = origin
        return thing

    def add_builtin(self, name: str, thing: T) -> None:
        """``add`` for a class of albench itself, from its definition hook (``__init_subclass__``);
        a class defined in another package waits for its entry point, which registers it with
        its origin."""
        if getattr(thing, "__module__", "").split(".")[0] in ALBENCH_PACKAGES:
            self.add(name, thing)

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: ``add(name, cls)``."""
        return lambda thing: self.add(name, thing)

    def lazy(self, name: str, target: str) -> None:
        """A built-in imported on first use: ``target`` is ``module:attribute`` (or a module)."""
        self._lazy[name] = target
        self._origins[name] = BUILTIN

    # -------------------------------------------------------------------------- reading

    def load_plugins(self) -> None:
        """Read the entry-point group once; each plug-in that cannot be used is one line in
        ``problems`` and is left out."""
        if self._plugins_read:
            return
        self._plugins_read = True
        for entry in sorted(importlib.metadata.entry_points(group=self.group), key=lambda e: e.name):
            dist = entry.dist
            origin = Origin(dist.name if dist else entry.module, dist.version if dist else "")
            where = f"{self.kind} plug-in {entry.name!r} ({entry.value}) of the package {origin.package!r}"
            if entry.name in self._lazy:
                self.problems.append(f"{where} is refused: the name is albench's own; fix: rename "
                                     "the entry point")
                continue
            try:
                thing = entry.load()
            except Exception as exc:  # noqa: BLE001 - any import failure of someone else's code
                self.problems.append(f"{where} could not be imported ({type(exc).__name__}: "
                                     f"{_one_line(exc)}); it is left out; fix: reinstall or "
                                     f"uninstall {origin.package}")
                continue
            try:
                self.add(entry.name, thing, origin)
            except PluginRefused as exc:
                self.problems.append(f"{where} is refused: {exc}")

    def get(self, name: str) -> T:
        if name in self._lazy:
            module, _, attribute = self._lazy.pop(name).partition(":")
            thing = importlib.import_module(module)
            self._things[name] = getattr(thing, attribute) if attribute else thing
        if name not in self._things:
            self.load_plugins()
        try:
            return self._things[name]
        except KeyError:
            failed = [p for p in self.problems if f" plug-in {name!r} " in p]
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
                                   + (f" ({failed[0]})" if failed else "")) from None

    def origin(self, name: str) -> Origin:
        """Where ``name`` comes from (``BUILTIN`` for albench's own)."""
        self.load_plugins()
        return self._origins[name]

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted({*self._things, *self._lazy})

    def items(self) -> list[tuple[str, T]]:
        """Every (name, thing), lazy built-ins imported."""
        return [(name, self.get(name)) for name in self.names()]

    def values(self) -> list[T]:
        return [thing for _, thing in self.items()]

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._things or name in self._lazy


def subclass_check(base: type, declared: Callable[[type], object]) -> Callable[[str, Any], None]:
    """The check of a kind whose things are ``base`` subclasses declaring their own name
    (``declared(cls)``, e.g. the default of a pydantic ``type`` field): it must be the name
    they are registered under."""

    def check(name: str, cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginRefused(f"{cls!r} is not a {base.__name__} subclass ({base.__module__})")
        if declared(cls) != name:
            raise PluginRefused(f"{cls.__name__} declares the name {declared(cls)!r}, not {name!r}")

    return check


def type_field(cls: Any) -> object:
    """The default of a pydantic class's ``type`` field (its name in a tagged union), or None."""
    field = cls.model_fields.get("type")
    return None if field is None else field.default


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ---------------------------------------------------------------------------------- strategies


class StrategyRegistry(Registry[type[QueryStrategy]]):
    """Strategy classes of one role (query strategy or initial pool), built with checked params."""

    def create(self, name: str, params: Mapping[str, Any] | None = None) -> QueryStrategy:
        """The strategy ``name`` built with ``params``, validated: ``UnknownNameError`` for an
        unknown name, else one ``StrategyParamError`` listing every unknown or invalid
        parameter (``problems``: (parameter, message) pairs)."""
        cls = self.get(name)
        values, problems = check_params(cls, dict(params or {}))
        if problems:
            raise StrategyParamError(name, problems)
        return cls(**values)

    @property
    def role(self) -> str:
        return self.kind


def strategy_check(cold_start: bool) -> Callable[[str, Any], None]:
    def check(name: str, cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, QueryStrategy)):
            raise PluginRefused(f"{cls!r} is not a QueryStrategy subclass")
        if vars(cls).get("registered_name") not in (None, name):
            raise PluginRefused(f"{cls.__name__} is registered as {cls.registered_name!r} already")
        if cold_start and not cls.cold_start:
            raise PluginRefused(f"{cls.__name__} cannot be an initial pool: it does not start cold "
                                "(set cold_start = True and select with no labelled row)")
        cls.registered_name = name

    return check


QUERY_STRATEGIES = StrategyRegistry("query strategy", "albench.strategies", strategy_check(False))
INITIAL_POOLS = StrategyRegistry("initial pool", "albench.initial_pools", strategy_check(True))

register_initial_pool = INITIAL_POOLS.register


def register_query_strategy(name: str, *, initial_pool: bool = False) -> Callable[[S], S]:
    """Class decorator: the class is the query strategy ``name``, and also the initial pool
    ``name`` when ``initial_pool`` (a cold-start strategy usable in both roles)."""

    def decorate(cls: S) -> S:
        QUERY_STRATEGIES.add(name, cls)
        if initial_pool:
            INITIAL_POOLS.add(name, cls)
        return cls

    return decorate
