"""Type hints as the graph reads them: readable names, edge compatibility, value validation.

* `type_name` prints a hint short and readable (`pandas.DataFrame`, `list[str]`);
* `fits(out, into)` says whether an output typed `out` may feed an input typed `into`
  (lenient on what it cannot reason about);
* `validate_value` validates a typed value (a params file, a call in a pipeline body,
  a value that crossed a JSON boundary) with pydantic's usual coercions;
* `parse_cli_text` reads the text a user typed (`--param k=v`) *strictly* for its hint:
  `true` is no float and `1` no bool, the reason is in the error; `a,b` is a list for a
  `list[...]` hint.

Pydantic adapters are built once per hint, and pydantic is imported only when a value
needs one: a value whose hint is its own plain type (an `int` for `int`, a `str` for
`str`) is what pydantic would return, so a pipeline of plain parameters never imports it
(a cached `orch run` does not pay for it). No I/O.
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import sys
import types
import typing
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ParamError
from orchestrator.model.step import HashContent

if TYPE_CHECKING:
    import pydantic

_EMPTY = inspect.Parameter.empty


def type_name(t: Any) -> str:
    """`pandas.DataFrame`, `sklearn.BaseEstimator`, `int`, `list[str]`: short and readable."""
    if t is Any or t is _EMPTY:
        return "Any"
    if typing.get_origin(t) is typing.Annotated:
        return type_name(typing.get_args(t)[0])
    if isinstance(t, type) and not typing.get_args(t):
        mod = t.__module__
        if mod == "builtins":
            return t.__qualname__
        return f"{mod.split('.')[0]}.{t.__qualname__}"
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{type_name(origin)}[{', '.join(type_name(a) for a in args)}]"
    return str(t).replace("typing.", "")


_NUMERIC = {int: (float, complex), float: (complex,), bool: (int, float, complex)}


def unwrap(t: Any) -> Any:
    """The type under `Annotated[...]`."""
    while typing.get_origin(t) is typing.Annotated:
        t = typing.get_args(t)[0]
    return t


def fits(out: Any, into: Any) -> bool:
    """Whether a value typed `out` may feed an input typed `into` (lenient on unknowns)."""
    out, into = unwrap(out), unwrap(into)
    if into in (Any, object, _EMPTY) or out in (Any, _EMPTY):
        return True
    if isinstance(into, typing.TypeVar) or isinstance(out, typing.TypeVar):
        return True
    o_origin, i_origin = typing.get_origin(out), typing.get_origin(into)
    if o_origin in (typing.Union, types.UnionType):
        return all(fits(a, into) for a in typing.get_args(out))
    if i_origin in (typing.Union, types.UnionType):
        return any(fits(out, a) for a in typing.get_args(into))
    o_cls, i_cls = (o_origin or out), (i_origin or into)
    if not (isinstance(o_cls, type) and isinstance(i_cls, type)):
        return True  # a typing construct we do not reason about
    if not (issubclass(o_cls, i_cls) or i_cls in _NUMERIC.get(o_cls, ())):
        return False
    o_args, i_args = typing.get_args(out), typing.get_args(into)
    if o_args and i_args and len(o_args) == len(i_args):
        return all(fits(a, b) for a, b in zip(o_args, i_args, strict=True))
    return True


def item_type(t: Any) -> Any | None:
    """The element type of a list-like hint (`list[T]`, `tuple[T, ...]`, `Sequence[T]`),
    `Any` for an unparametrised one or `Any` itself, None for anything else."""
    t = unwrap(t)
    if t in (Any, _EMPTY):
        return Any
    origin, args = typing.get_origin(t) or t, typing.get_args(t)
    if not isinstance(origin, type) or not issubclass(origin, collections.abc.Sequence):
        return None
    if issubclass(origin, str | bytes):
        return None
    if origin is tuple and args and args[-1] is not Ellipsis:
        return typing.Union[args] if len(set(args)) > 1 else args[0]  # noqa: UP007
    return unwrap(args[0]) if args else Any


def has_hash_content(annotation: Any) -> bool:
    return typing.get_origin(annotation) is typing.Annotated and any(
        isinstance(m, HashContent) for m in typing.get_args(annotation)[1:]
    )


def model_class(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The pydantic model a hint is (or the one arm of an optional union that is one)."""
    t = unwrap(annotation)
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(t) if a is not type(None)]
        t = unwrap(arms[0]) if len(arms) == 1 else None
    pd = sys.modules.get("pydantic")  # not imported yet: no class can be a model
    if pd is not None and isinstance(t, type) and issubclass(t, pd.BaseModel):
        return t
    return None


# -- validation -------------------------------------------------------------------------

_adapters: dict[Any, pydantic.TypeAdapter[Any] | None] = {}


def _adapter(annotation: Any) -> pydantic.TypeAdapter[Any] | None:
    try:
        return _adapters[annotation]
    except (KeyError, TypeError):
        pass
    import pydantic

    try:
        adapter: pydantic.TypeAdapter[Any] | None = pydantic.TypeAdapter(annotation)
    except (pydantic.PydanticSchemaGenerationError, TypeError):
        adapter = None
    try:
        _adapters[annotation] = adapter
    except TypeError:
        pass
    return adapter


def _reasons(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"] for e in exc.errors()
    )


def validate_value(annotation: Any, value: Any, where: str) -> Any:
    """Validate one typed value against its hint; raise ParamError naming `where`."""
    if annotation in (Any, _EMPTY) or (type(value) is annotation and annotation in _PLAIN):
        return value
    adapter = _adapter(annotation)
    if adapter is None:
        return value
    import pydantic

    try:
        return adapter.validate_python(value)
    except pydantic.ValidationError as exc:
        raise ParamError(
            f"{where}: expected {type_name(annotation)}, got {value!r} ({_reasons(exc)})"
        ) from None


_PLAIN = frozenset({int, float, str, bool})  # pydantic returns a value of these as it is


def parse_cli_value(raw: str) -> Any:
    """Untyped command-line text: JSON when it parses (numbers, lists, true), else the text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


_SEQUENCES = (list, set, frozenset, tuple)


def _item_types(annotation: Any, count: int) -> list[Any] | None:
    """The item hints of a list-like hint for `count` items, or None if it is not one."""
    t = unwrap(annotation)
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Union or origin is types.UnionType:
        seqs = [a for a in args if typing.get_origin(unwrap(a)) in _SEQUENCES]
        return _item_types(seqs[0], count) if len(seqs) == 1 else None
    if origin not in _SEQUENCES and t not in _SEQUENCES:
        return None
    if origin is tuple and args and args[-1] is not Ellipsis:
        return list(args) if len(args) == count else [Any] * count
    return [args[0] if args else Any] * count


def _strict_json(adapter: pydantic.TypeAdapter[Any], doc: str) -> Any:
    return adapter.validate_json(doc, strict=True)


def parse_cli_text(annotation: Any, text: str, where: str) -> Any:
    """Read `--param` text strictly for its hint (see the module docstring)."""
    if annotation in (Any, _EMPTY):
        return parse_cli_value(text)
    adapter = _adapter(annotation)
    if adapter is None:
        return parse_cli_value(text)
    documents = [json.dumps(text)]
    try:
        json.loads(text)
        documents.insert(0, text)
    except ValueError:
        pass
    import pydantic

    first: pydantic.ValidationError | None = None
    for doc in documents:
        try:
            return _strict_json(adapter, doc)
        except pydantic.ValidationError as exc:
            first = first or exc
    items = [p.strip() for p in text.split(",")] if text.strip() else []
    item_types = _item_types(annotation, len(items))
    if item_types is not None and not text.lstrip().startswith("["):
        values = [
            parse_cli_text(t, item, f"{where} item {i}")
            for i, (t, item) in enumerate(zip(item_types, items, strict=True))
        ]
        return validate_value(annotation, values, where)
    assert first is not None
    raise ParamError(
        f"{where}: expected {type_name(annotation)}, got {text!r} ({_reasons(first)}; "
        "command-line values are read strictly for their type)"
    )
