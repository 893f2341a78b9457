"""The start-run form: one field per pipeline parameter, validated as `orch run` validates.

A field's text is validated against the parameter's type hint with the engine's own
`validate_value` (the same pydantic adapters), trying the text as it is first (pydantic
turns "0.5" into a float, "true" into a bool) and then as JSON (`[1, 2]`, `{"a": 1}`),
the way `--param` values are read. Every bad field gets its own message; then the whole
pipeline is built with the values, so step-level problems are found before a run starts.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from orchestrator.errors import OrchestratorError, ParamError
from orchestrator.model.graph import parse_cli_value, type_name, validate_value
from orchestrator.ui.present import param_text


@dataclasses.dataclass
class Field:
    name: str
    type: str
    default: Any
    value: str
    error: str = ""


@dataclasses.dataclass
class StartForm:
    fields: list[Field]
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not any(f.error for f in self.fields)


def blank_form(pipe: Any) -> StartForm:
    """Each parameter prefilled with its default."""
    return StartForm(
        [
            Field(name, type_name(ann), default, param_text(default))
            for name, (ann, default) in pipe.param_specs.items()
        ]
    )


def validate_form(pipe: Any, submitted: dict[str, str]) -> tuple[StartForm, dict[str, Any]]:
    """The form as submitted, with per-field errors, and the parameters that differ from
    their defaults (what `--param` will pass)."""
    form = blank_form(pipe)
    overrides: dict[str, Any] = {}
    for f in form.fields:
        if f.name not in submitted:
            continue
        f.value = submitted[f.name]
        annotation = pipe.param_specs[f.name][0]
        try:
            value = _validate(annotation, f.value, f"pipeline '{pipe.name}' parameter '{f.name}'")
        except ParamError as exc:
            f.error = str(exc)
            continue
        if not _same(value, f.default):
            overrides[f.name] = value
    unknown = sorted(set(submitted) - {f.name for f in form.fields})
    if unknown:
        form.error = f"pipeline '{pipe.name}' has no parameter {', '.join(map(repr, unknown))}"
    if form.ok:
        try:
            pipe.build(overrides)
        except OrchestratorError as exc:
            form.error = str(exc)
    return form, overrides


def _validate(annotation: Any, text: str, where: str) -> Any:
    candidates: list[Any] = [text]
    parsed = parse_cli_value(text)
    if not isinstance(parsed, str):
        candidates.append(parsed)
    if text.strip() == "":
        candidates.append(None)
    error: ParamError | None = None
    for candidate in candidates:
        try:
            return validate_value(annotation, candidate, where)
        except ParamError as exc:
            error = error or exc
    assert error is not None
    raise error


def _same(a: Any, b: Any) -> bool:
    try:
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(
            b, sort_keys=True, default=str
        )
    except (TypeError, ValueError):
        return bool(a == b)


def cli_params(overrides: dict[str, Any]) -> list[str]:
    """`--param K=V` arguments (values as JSON, which `orch run` reads back exactly)."""
    args: list[str] = []
    for key, value in overrides.items():
        args += ["--param", f"{key}={json.dumps(value, default=str)}"]
    return args
