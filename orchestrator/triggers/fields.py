"""Type checks of trigger definitions (schedules, event triggers, sensors, monitors).

The definitions are frozen dataclasses written by users at module level. Before any check of
a value's range (`cooldown >= 0`), each field is checked against its annotation with pydantic
in strict mode (no coercion: `"600"` is not a number, `True` is not an int), so a wrong type
is one clear `DefinitionError` naming the definition, the field, what was expected and what
was given, never a `TypeError` from deep inside a comparison.

`Literal` fields are checked as strings here; their allowed values are the definition's own
check, which lists the choices.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

from pydantic import TypeAdapter, ValidationError

from orchestrator.errors import OrchestratorError


class DefinitionError(OrchestratorError):
    """A schedule, trigger, sensor or monitor definition has a wrong field."""


_WORDS: dict[Any, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "True or False",
    dict: "a dict",
    tuple: "a tuple",
    list: "a list",
    type(None): "None",
}
_PLURAL: dict[Any, str] = {str: "strings", int: "integers", float: "numbers"}


def _loosen(hint: Any) -> Any:
    """The hint with `Literal[...]` replaced by `str` (choices are checked elsewhere)."""
    if typing.get_origin(hint) is typing.Literal:
        return str
    return hint


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return "a string"
    if origin is dict:
        return "a dict with string keys"
    if origin in (tuple, list):
        items = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"{_WORDS[origin]} of {_PLURAL.get(items[0], 'values')}" if items else _WORDS[origin]
    return _WORDS.get(hint, getattr(hint, "__name__", str(hint)))


@functools.cache
def _checks(cls: type) -> tuple[tuple[str, TypeAdapter[Any], str], ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = _loosen(hints[f.name])
        unit = f.metadata.get("unit", "")
        out.append((f.name, TypeAdapter(hint), _describe(hint) + (f" ({unit})" if unit else "")))
    return tuple(out)


def check_fields(obj: Any, what: str) -> None:
    """Raise `DefinitionError` for the first field of `obj` whose value has the wrong type.

    `what` names the definition, e.g. `event trigger 'on-data'`.
    """
    for name, adapter, expected in _checks(type(obj)):
        value = getattr(obj, name)
        try:
            adapter.validate_python(value, strict=True)
        except ValidationError:
            raise DefinitionError(
                f"{what}: {name} must be {expected}, got {value!r} ({type(value).__name__})"
            ) from None


def seconds(default: float) -> Any:
    """A dataclass field holding a duration in seconds (named so in error messages)."""
    return dataclasses.field(default=default, metadata={"unit": "seconds"})


__all__ = ["DefinitionError", "check_fields", "seconds"]
