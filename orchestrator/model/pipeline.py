"""Pipelines: functions whose body wires steps, and which other pipelines can call.

A `@pipeline` function's arguments are of two kinds:

* *parameters* (arguments with a default): plain values, validated against their hint,
  overridable at run time (`--param alpha=0.3`, a params file);
* *inputs* (arguments without a default): bound, when the pipeline is called inside
  another pipeline, to outputs of the caller's steps. A pipeline that has inputs cannot
  be run on its own.

Called inside another pipeline's body, a pipeline is traced into the caller's graph under
a namespace, the call's name (the pipeline's name unless named with `.named("x")` or
`_name="x"`; a second unnamed call is `<name>_2`): its steps are `data_science.train`,
its parameters `data_science.alpha`. The call returns whatever the body returns (one
output, a tuple, a dict or a NamedTuple of outputs). Called anywhere else, it is the
plain function. Problems in the definition (hints that do not resolve, `*args`, a bad
name) are found when the pipeline is first used, so one broken pipeline does not stop
its file from loading. Building runs user code; nothing else here does I/O.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import sys
import sysconfig
import traceback
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError, ParamError, PipelineError, did_you_mean
from orchestrator.model.builder import Builder, Scope
from orchestrator.model.graph import Graph
from orchestrator.model.params import ParamTree, apply_override
from orchestrator.model.step import (
    Each,
    Fixed,
    Node,
    Output,
    Step,
    building,
    listish,
    name_problem,
    reset_builder,
    set_builder,
)
from orchestrator.model.types import validate_value

_REF = re.compile(r"^(?P<node>[^\[\]]+)(\[(?P<idx>\d+)\])?$")
_EMPTY = inspect.Parameter.empty


@dataclasses.dataclass(frozen=True)
class Signature:
    """A pipeline's arguments: inputs (no default) and parameters (hint, default)."""

    inputs: dict[str, Any]
    params: dict[str, tuple[Any, Any]]

    @property
    def names(self) -> list[str]:
        return [*self.inputs, *self.params]


class Pipeline:
    """A pipeline. Build its graph with `.build(overrides)`; call it inside another."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        self._signature: Signature | None = None

    # -- definition ----------------------------------------------------------------------
    @property
    def signature(self) -> Signature:
        """The analysed arguments; a PipelineError naming the pipeline if they are wrong."""
        if self._signature is None:
            self._signature = self._analyse()
        return self._signature

    def _analyse(self) -> Signature:
        if problem := name_problem(self.name, "pipeline"):
            raise PipelineError(problem)
        try:
            hints = typing.get_type_hints(self.fn, include_extras=True)
        except Exception as exc:  # an unresolved forward reference in user code
            raise PipelineError(
                f"pipeline '{self.name}': cannot read its type hints: {exc}"
            ) from None
        inputs: dict[str, Any] = {}
        params: dict[str, tuple[Any, Any]] = {}
        for p in inspect.signature(self.fn).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise PipelineError(f"pipeline '{self.name}': *args and **kwargs are not supported")
            if p.default is _EMPTY:
                inputs[p.name] = hints.get(p.name, Any)
            else:
                guess = Any if p.default is None else type(p.default)
                params[p.name] = (hints.get(p.name, guess), p.default)
        return Signature(inputs, params)

    @property
    def param_specs(self) -> dict[str, tuple[Any, Any]]:
        """`{name: (hint, default)}` of the parameters (arguments with a default)."""
        return self.signature.params

    @property
    def inputs(self) -> dict[str, Any]:
        """`{name: hint}` of the inputs (arguments without a default)."""
        return self.signature.inputs

    def defaults(self) -> dict[str, Any]:
        return {k: d for k, (_, d) in self.param_specs.items()}

    def named(self, name: str) -> Callable[..., Any]:
        """This pipeline called under another namespace: `data_science.named("ds")(x)`."""
        return functools.partial(self.__call__, _name=name)

    # -- building --------------------------------------------------------------------------
    def run(self, **params: Any) -> Any:
        """Run this pipeline with `params` (see `orchestrator.run`) -> `orchestrator.Run`."""
        from orchestrator.api import run

        return run(self, params)

    def sweep(self, grid: Mapping[str, Any], **options: Any) -> Any:
        """Run a sweep over `grid` (see `orchestrator.sweep`) -> `orchestrator.Sweep`."""
        from orchestrator.sweeps import sweep

        return sweep(self, dict(grid), **options)

    def build(self, overrides: Mapping[str, Any] | None = None) -> Graph:
        """Trace the body with `overrides` (a tree or dotted keys) into a validated graph."""
        sig = self.signature
        if sig.inputs:
            names = ", ".join(f"'{n}'" for n in sig.inputs)
            raise PipelineError(
                f"pipeline '{self.name}' has input(s) {names} (arguments without a default), so "
                "it can only be called inside another pipeline; to run it on its own, give "
                "each a default value to make it a parameter"
            )
        source = getattr(overrides, "source", None) if isinstance(overrides, ParamTree) else None
        builder = Builder(self.name, overrides or {}, source)
        root = builder.scope
        root.params = tuple(sig.params)
        values = self._resolve_params(root, self.defaults(), builder)
        if builder.problems:  # a bad pipeline parameter: stop before running user code
            builder.finish()
        token = set_builder(builder)
        try:
            self._trace(values, None)
        finally:
            reset_builder(token)
        builder.finish()
        return Graph.build(self.name, builder.nodes, _tree(builder.resolved), builder.groups)

    def _resolve_params(
        self, scope: Scope, values: dict[str, Any], builder: Builder
    ) -> dict[str, Any]:
        """Values of the parameters after the overrides of `scope`; recorded as resolved."""
        for key, (annotation, _) in self.param_specs.items():
            where = f"{scope.label} parameter '{scope.prefix}{key}'"
            value = values[key]
            if isinstance(value, Output) and key not in scope.overrides:
                continue  # a caller's step output given for a parameter: an edge, not a value
            try:
                if key in scope.overrides:
                    value = apply_override(annotation, value, scope.take(key), where)
                elif not isinstance(value, Output):
                    value = validate_value(annotation, value, where)
            except ParamError as exc:
                builder.problems.append(str(exc))
                continue
            values[key] = value
            builder.resolved[scope.prefix + key] = value
        for key in self.inputs:
            if key in scope.overrides:
                scope.take(key)
                builder.problems.append(
                    f"'{scope.prefix}{key}' is an input of {scope.label}, bound to another "
                    "step's output by its caller, not a parameter"
                )
        return values

    def _trace(self, values: dict[str, Any], called: str | None) -> Any:
        """Run the body; a user exception becomes one PipelineError naming where it was."""
        try:
            return self.fn(**values)
        except OrchestratorError:
            raise
        except (Exception, SystemExit) as exc:
            raise PipelineError(
                f"pipeline '{self.name}'{called or ''} failed while its graph was being "
                f"built{_where(exc)}: {_describe(exc)}"
            ) from None

    def __call__(self, *args: Any, _name: str | None = None, **kwargs: Any) -> Any:
        builder = building()
        if not isinstance(builder, Builder):
            return self.fn(*args, **kwargs)
        parent = builder.scope.label
        sig = self.signature
        scope = builder.enter(self.name, _name, tuple(sig.params))
        try:
            values = self._bind(scope, parent, args, kwargs)
            values = self._resolve_params(scope, values, builder)
            called = scope.label[len(f"pipeline '{self.name}'") :]
            return self._trace(values, called)
        finally:
            builder.leave()

    def map(
        self, *args: Any, _name: str | None = None, max_parallel: int | None = None, **kwargs: Any
    ) -> Any:
        """Call this pipeline once per element of a list known only at run time.

        Arguments bound to step outputs typed `list[...]` (or `Any`) are mapped, as in
        `Step.map`; the rest (and `fixed(x)`) go whole to every element. Inside the body
        a mapped argument stands for one element: every step call it reaches runs once
        per element (`ds.fit[0]`, `ds.fit[1]`, ...), each cached by its element, and the
        steps it does not reach run once. What the body returns from per-element steps
        comes back as lists, in element order. A `.map()` inside the body (a map of
        maps) is refused.
        """
        builder = building()
        if not isinstance(builder, Builder):
            raise PipelineError(
                f"pipeline '{self.name}': .map() wires a pipeline; call it inside a @pipeline body"
            )
        if max_parallel is not None and (not isinstance(max_parallel, int) or max_parallel < 1):
            raise PipelineError(
                f"pipeline '{self.name}': max_parallel must be a positive integer, got "
                f"{max_parallel!r}"
            )
        names = self.signature.names
        bound = dict(zip(names, args, strict=False))
        bound.update(kwargs)
        if len(args) > len(names):
            raise PipelineError(
                f"pipeline '{self.name}' takes {len(names)} arguments but {len(args)} were "
                "given positionally"
            )
        if any(isinstance(v, Each) for v in bound.values()):
            raise PipelineError(
                f"pipeline '{self.name}': .map() inside a mapped sub-pipeline is not supported "
                "(a map of maps)"
            )
        mapped = {k for k, v in bound.items() if isinstance(v, Output) and listish(v.type)}
        if not mapped:
            raise PipelineError(
                f"pipeline '{self.name}' .map() maps over nothing: bind an argument to a step "
                "output typed list[...] (other values go whole to every element)"
            )
        values = {
            k: Each(v.node, v.index, v.type, v.name)
            if k in mapped
            else (v.value if isinstance(v, Fixed) else v)
            for k, v in bound.items()
        }
        previous, builder.max_parallel = builder.max_parallel, max_parallel
        try:
            return _plain(self(_name=_name, **values))
        finally:
            builder.max_parallel = previous

    def _bind(
        self, scope: Scope, parent: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        sig = self.signature
        where = f"{scope.label} in {parent}"
        names = sig.names
        if len(args) > len(names):
            raise PipelineError(
                f"{where} takes {len(names)} arguments but {len(args)} were given positionally"
            )
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in sig.inputs and key not in sig.params:
                raise PipelineError(
                    f"{where} has no input or parameter '{key}'{did_you_mean(key, names)}; "
                    f"it takes: {', '.join(names) or 'nothing'}"
                )
            if key in values:
                raise PipelineError(f"{where} got argument '{key}' twice")
            values[key] = value
        missing = [n for n in sig.inputs if n not in values]
        if missing:
            raise PipelineError(
                f"{where} is missing input(s) {', '.join(repr(m) for m in missing)}: pass "
                "another step's output for each"
            )
        return {**self.defaults(), **values}

    @classmethod
    def from_spec(cls, name: str, spec: list[dict[str, Any]]) -> Graph:
        """Build a graph from an explicit list of nodes: `{"name", "step", "inputs", "params"}`.

        Inputs name other nodes: `"load"` or `"split[1]"` for a second output.
        """
        nodes = []
        for entry in spec:
            step: Step[Any] = entry["step"]
            bindings: dict[str, Any] = dict(entry.get("params", {}))
            for arg, ref in entry.get("inputs", {}).items():
                m = _REF.match(ref)
                if m is None:
                    raise PipelineError(
                        f"step '{entry['name']}' input '{arg}': bad reference {ref!r}"
                    )
                bindings[arg] = Output(m["node"], int(m["idx"] or 0))
            nodes.append(Node(entry.get("name", step.name), step, bindings, explicit_name=True))
        groups = {n.name.rpartition(".")[0]: "" for n in nodes if "." in n.name}
        return Graph.build(name, nodes, groups=groups)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def pipeline(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Declare a pipeline: `@pipeline` over a function that calls steps (and pipelines)."""
    if fn is not None:
        return Pipeline(fn, name)
    return lambda f: Pipeline(f, name)


def _plain(value: Any) -> Any:
    """What a mapped sub-pipeline returns, with its per-element outputs as lists."""
    if isinstance(value, Each):
        return value.plain()
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)._make(_plain(v) for v in value)
    if isinstance(value, tuple | list):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _tree(flat: dict[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1}` -> `{"a": {"b": 1}}`."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        parts = path.split(".")
        node = out
        while len(parts) > 1 and isinstance(node.setdefault(parts[0], {}), dict):
            node = node[parts.pop(0)]
        node[".".join(parts)] = value  # a name that is also a parameter's stays dotted
    return out


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit (sys.exit({exc.code!r}))"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _library_roots() -> tuple[str, ...]:
    here = str(Path(__file__).resolve().parents[1])
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= {p for p in sys.path if "site-packages" in p or "dist-packages" in p}
    return (here, *sorted(str(Path(p).resolve()) for p in paths if p))


def _where(exc: BaseException) -> str:
    """` at file.py, line N`: the deepest frame of the user's own code."""
    roots = _library_roots()
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not str(Path(f.filename).resolve()).startswith(roots)
    ]
    if not frames:
        return ""
    path = Path(frames[-1].filename)
    try:
        shown = str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    return f" ({shown}, line {frames[-1].lineno})"
