"""Run-time parameters: `--param` items, a params file, and how an override meets a value.

Overrides are a *tree*: nested mappings whose keys are the target pipeline's parameters,
its step calls and its sub-pipeline calls, then their parameters, then (for a parameter
typed as a pydantic model) its fields. A dotted key is the same path written flat:
`{"data_science.train.alpha": 0.1}` is `{"data_science": {"train": {"alpha": 0.1}}}`.

* `cli_overrides(items, params_file)` reads `--param a.b.c=v` items and a YAML, TOML or
  JSON file into one tree; `--param` wins over the file. A leaf typed on the command
  line is kept as `CliText`, so it is parsed *strictly* once its hint is known (see
  `types.parse_cli_text`); a file's values are typed already and validate normally.
* `apply_override(annotation, current, override, where)` is how an override meets a
  parameter's current value: a mapping sets fields of a pydantic model (the others keep
  their values), text is parsed strictly, anything else is validated.

Reading the file is this module's only I/O.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import ParamError, did_you_mean
from orchestrator.model.types import model_class, parse_cli_text, parse_cli_value, validate_value


class CliText(str):
    """A value as typed on the command line, parsed once its type hint is known."""


class ParamTree(dict[str, Any]):
    """An override tree that remembers the params file it came from (for messages)."""

    source: str | None = None


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Split dotted keys into nested mappings, recursively; later keys win."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        leaf = nest(value) if isinstance(value, Mapping) else value
        if isinstance(leaf, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = merge(node[parts[-1]], leaf)
        else:
            node[parts[-1]] = leaf
    return out


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` over `base`, mapping by mapping."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_items(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` items (KEY may be a dotted path) into a tree of `CliText` leaves."""
    flat: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamError(f"--param expects KEY=VALUE, got {item!r}")
        if any(not part for part in key.split(".")):
            raise ParamError(f"--param {item!r}: the key {key!r} has an empty part")
        flat[key] = CliText(raw)
    return nest(flat)


def load_file(path: Path) -> dict[str, Any]:
    """A params file (`.yaml`/`.yml`, `.toml` or `.json`) as a nested tree."""
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml", ".json"):
        raise ParamError(f"params file {path}: expected a .yaml, .yml, .toml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamError(f"params file {path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ParamError(f"params file {path}: not UTF-8 text") from None
    data = _parse(path, suffix, text)
    if data is None and suffix in (".yaml", ".yml"):
        data = {}
    if not isinstance(data, Mapping):
        raise ParamError(
            f"params file {path}: expected a mapping of parameters at the top, "
            f"got {type(data).__name__}"
        )
    bad = [k for k in _keys(data) if not isinstance(k, str)]
    if bad:
        raise ParamError(f"params file {path}: keys must be text, got {bad[0]!r}")
    return nest(data)


def _parse(path: Path, suffix: str, text: str) -> Any:
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ParamError(f"params file {path}: invalid TOML: {exc}") from None
    if suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ParamError(f"params file {path}: invalid JSON: {exc}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ParamError(f"params file {path}: invalid YAML: {where}{reason}") from None


def _keys(data: Mapping[Any, Any]) -> list[Any]:
    out = list(data)
    for value in data.values():
        if isinstance(value, Mapping):
            out += _keys(value)
    return out


def cli_overrides(items: list[str], params_file: Path | None = None) -> ParamTree:
    """The override tree of a command line: the params file, then `--param` over it."""
    tree = ParamTree(merge(load_file(params_file) if params_file else {}, parse_items(items)))
    tree.source = f"params file {params_file}" if params_file else None
    return tree


def plain(value: Any) -> Any:
    """A tree with its `CliText` leaves read as untyped values (JSON when it parses)."""
    if isinstance(value, CliText):
        return parse_cli_value(str(value))
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def has_cli_text(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(has_cli_text(v) for v in value.values())
    return isinstance(value, CliText)


def apply_override(annotation: Any, current: Any, override: Any, where: str) -> Any:
    """The value of a parameter once `override` is applied to its `current` value."""
    model = model_class(annotation)
    if isinstance(override, Mapping) and model is not None:
        if isinstance(current, model):
            base = current.model_dump()
        elif isinstance(current, Mapping):
            base = dict(current)
        else:
            base = {}
        fields = model.model_fields
        for key, value in override.items():
            if key not in fields:
                raise ParamError(
                    f"{where}: {model.__name__} has no field '{key}'{did_you_mean(key, fields)}"
                    f"; its fields: {', '.join(fields)}"
                )
            base[key] = apply_override(
                fields[key].annotation, base.get(key), value, f"{where} field '{key}'"
            )
        return validate_value(annotation, base, where)
    if isinstance(override, CliText):
        return parse_cli_text(annotation, str(override), where)
    return validate_value(annotation, plain(override), where)
