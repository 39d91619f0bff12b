"""Strategy parameters: the constraints each field declares, checked when a strategy is built.

A strategy's parameters are its dataclass fields, typed with ``annotated_types`` constraints
(``k: Annotated[int, Ge(1)] = 20``, ``first: Literal["max_norm", "sample"]``, ``delta:
Annotated[float, Gt(0)] | None``). ``param_constraints`` reads them as data
(``ParamConstraint``: type, bounds, choices, None allowed), ``check_params`` validates values
against them with pydantic in lax mode (``"3"`` and ``3.0`` are the int 3, as in a YAML config)
and words every problem one way: the parameter, the values allowed, what was given.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import TypeAdapter, ValidationError

_BOUND_SYMBOLS = {
    annotated_types.Gt: ("gt", ">"),
    annotated_types.Ge: ("ge", ">="),
    annotated_types.Lt: ("lt", "<"),
    annotated_types.Le: ("le", "<="),
    annotated_types.MinLen: ("min_length", "of length >="),
    annotated_types.MaxLen: ("max_length", "of length <="),
}
_KIND_WORDS = {int: "an int", float: "a number", bool: "a bool", str: "a string"}


@dataclass(frozen=True)
class ParamConstraint:
    """What one parameter accepts, read from its field's type."""

    name: str
    annotation: Any
    """The field's full type, what pydantic validates against."""
    kind: Any
    """The base type (``int``, ``float``, ``bool``, ``str``...), None for a ``Literal``."""
    choices: tuple | None
    """The values of a ``Literal``, else None."""
    bounds: tuple
    """``annotated_types`` constraints (``Interval`` expanded into Gt/Ge/Lt/Le)."""
    nullable: bool
    """True when None is allowed (``X | None``)."""

    def describe(self) -> str:
        """The allowed values in words: ``an int >= 1``, ``one of 'a', 'b'``, ``... or None``."""
        if self.choices is not None:
            words = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            kind = getattr(self.kind, "__name__", str(self.kind))
            limits = []
            for bound in self.bounds:
                attribute, symbol = _BOUND_SYMBOLS.get(type(bound), (None, None))
                limits.append(f"{symbol} {getattr(bound, attribute)}" if attribute else f"({bound})")
            words = " and ".join([_KIND_WORDS.get(self.kind, f"a {kind}") + (" " if limits else "")
                                  + (limits[0] if limits else ""), *limits[1:]])
        return words + (", or None" if self.nullable else "")

    def check(self, value: Any) -> tuple[Any, str | None]:
        """(the value as validated, None), or (None, ``must be ..., got ...``)."""
        try:
            return _adapter(self.annotation).validate_python(value), None
        except ValidationError:
            return None, f"must be {self.describe()}, got {value!r}"


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter:
    return TypeAdapter(annotation)


def _constraint(name: str, annotation: Any) -> ParamConstraint:
    inner, nullable = annotation, False
    if get_origin(inner) in (Union, types.UnionType):
        members = [a for a in get_args(inner) if a is not type(None)]
        nullable = len(members) < len(get_args(inner))
        if len(members) == 1:
            inner = members[0]
    metadata: tuple = ()
    if get_origin(inner) is Annotated:
        inner, *extra = get_args(inner)
        metadata = tuple(extra)
    bounds = []
    for item in metadata:
        bounds.extend(item if isinstance(item, annotated_types.GroupedMetadata) else [item])
    choices = get_args(inner) if get_origin(inner) is Literal else None
    return ParamConstraint(name, annotation, None if choices else inner, choices, tuple(bounds), nullable)


@functools.cache
def param_constraints(cls: type) -> dict[str, ParamConstraint]:
    """The constraint of every constructor parameter (dataclass field) of ``cls``, in order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {
        f.name: _constraint(f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.init
    }


def check_params(cls: type, params: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(validated values, problems) for ``params`` given to ``cls``: every problem at once, each a
    (parameter, message) pair; names that are no parameter of ``cls`` are problems too."""
    constraints = param_constraints(cls)
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name, value in params.items():
        if name not in constraints:
            valid = ", ".join(constraints) if constraints else "none (it takes no parameters)"
            problems.append((name, f"is unknown; valid parameters: {valid}"))
            continue
        values[name], problem = constraints[name].check(value)
        if problem is not None:
            problems.append((name, problem))
    return values, problems
