"""The start-run form: one field per pipeline parameter and one per step parameter
(`split.seed`, what `--param split.seed=1` sets), validated as `orch run` validates.

A field's text is validated against the parameter's type hint with the engine's own
`validate_value` (the same pydantic adapters), trying the text as it is first (pydantic
turns "0.5" into a float, "true" into a bool) and then as JSON (`[1, 2]`, `{"a": 1}`),
the way `--param` values are read. Every bad field gets its own message; then the whole
pipeline is built with the values, so step-level problems are found before a run starts.
A parameter declared with bounds (`Annotated[float, Field(gt=0, lt=1)]`) shows them as
its hint and is refused outside them. A step parameter is offered when the default
graph binds it to a plain JSON value (not an input, not an object); only the fields a
person changed become overrides, as with `--param`. The form also picks the executor
(`executor`, one of `EXECUTORS`), and `prefilled_form` fills it from an earlier run
("edit and re-run").
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import annotated_types

from orchestrator.errors import OrchestratorError, ParamError
from orchestrator.execution.backends import NAMES as EXECUTORS
from orchestrator.model.graph import parse_cli_value, type_name, validate_value
from orchestrator.model.step import is_input
from orchestrator.ui.present import param_text


@dataclasses.dataclass
class Field:
    name: str
    type: str
    default: Any
    value: str
    error: str = ""
    hint: str = ""
    annotation: Any = Any
    where: str = ""  # how an error names the field: "pipeline 'p' parameter 'C'"
    step: bool = False  # a step's parameter (`node.arg`), not the pipeline's


@dataclasses.dataclass
class StartForm:
    fields: list[Field]
    error: str = ""
    executor: str = "thread"
    executors: tuple[str, ...] = EXECUTORS

    @property
    def ok(self) -> bool:
        return not self.error and not any(f.error for f in self.fields)

    @property
    def step_fields_changed(self) -> bool:
        """Whether a step field differs from its default or is wrong (show them opened)."""
        return any(f.error or f.value != param_text(f.default) for f in self.fields if f.step)


_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "<="),
)


def bounds(annotation: Any) -> str:
    """The bounds an `Annotated` hint declares, as text (`> 0, < 1`), or ""."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return ""
    found: list[Any] = []
    for meta in typing.get_args(annotation)[1:]:
        found += [meta, *getattr(meta, "metadata", [])]
    return ", ".join(
        f"{sign} {getattr(m, attr)}" for m in found for kind, attr, sign in _BOUNDS
        if isinstance(m, kind)
    )  # fmt: skip


def blank_form(pipe: Any) -> StartForm:
    """Each parameter prefilled with its default: the pipeline's, then its steps'."""
    fields = [
        Field(
            name, type_name(ann), default, param_text(default), hint=bounds(ann),
            annotation=ann, where=f"pipeline '{pipe.name}' parameter '{name}'",
        )
        for name, (ann, default) in pipe.param_specs.items()
    ]  # fmt: skip
    return StartForm(fields + step_fields(pipe, set(pipe.param_specs)))


def step_fields(pipe: Any, taken: set[str]) -> list[Field]:
    """A field per step parameter bound to a plain JSON value in the default graph (none
    when the pipeline does not build: the form's own check says why on submit)."""
    try:
        graph = pipe.build()
    except OrchestratorError:
        return []
    fields: list[Field] = []
    for node in graph.nodes.values():
        for arg, spec in node.step.arguments.items():
            value = node.bindings.get(arg, spec.default)
            name = f"{node.name}.{arg}"
            if arg.startswith("_") or name in taken or is_input(value) or not _plain(value):
                continue
            fields.append(
                Field(
                    name, type_name(spec.annotation), value, param_text(value),
                    hint=bounds(spec.annotation), annotation=spec.annotation,
                    where=f"step '{node.name}' parameter '{arg}'", step=True,
                )
            )  # fmt: skip
    return fields


def _plain(value: Any) -> bool:
    """Whether a value is plain JSON (what a person can type back in a text field)."""
    if value is None or isinstance(value, str | int | float | bool):
        return True
    try:
        return json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        return False


def _lookup(params: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    """A run's parameter by dotted name, from flat (`split.seed`) or nested params."""
    if dotted in params:
        return True, params[dotted]
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def prefilled_form(pipe: Any, params: dict[str, Any], executor: str) -> StartForm:
    """The form filled with an earlier run's parameters and executor."""
    form = blank_form(pipe)
    for f in form.fields:
        found, value = _lookup(params, f.name)
        if found:
            f.value = param_text(value)
    form.executor = executor if executor in EXECUTORS else form.executor
    return form


EXECUTOR_FIELD = "_executor"  # no pipeline parameter's name: those are never private


def pick_executor(form: StartForm, submitted: dict[str, str]) -> str:
    """The executor the form picked (`EXECUTOR_FIELD`); an unknown one is the form's error."""
    name = submitted.get(EXECUTOR_FIELD, "").strip() or "thread"
    form.executor = name
    if name not in EXECUTORS:
        form.error = f"unknown executor '{name}' (one of: {', '.join(EXECUTORS)})"
    return name


def validate_form(pipe: Any, submitted: dict[str, str]) -> tuple[StartForm, dict[str, Any]]:
    """The form as submitted, with per-field errors, and the parameters that differ from
    their defaults (what `--param` will pass)."""
    form = blank_form(pipe)
    overrides: dict[str, Any] = {}
    for f in form.fields:
        if f.name not in submitted:
            continue
        f.value = submitted[f.name]
        try:
            value = _validate(f.annotation, f.value, f.where)
        except ParamError as exc:
            f.error = str(exc)
            continue
        if not _same(value, f.default):
            overrides[f.name] = value
    unknown = sorted(set(submitted) - {f.name for f in form.fields} - {EXECUTOR_FIELD})
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
