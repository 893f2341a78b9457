"""Pipelines: build a graph of nodes, validate it, plan it. No I/O, no execution.

A `Pipeline` is a function decorated with `@pipeline` whose body calls steps; its own
arguments (with defaults) are the pipeline parameters, overridable at run time. Building
it traces the calls into `Node`s; `Graph` turns them into a networkx DiGraph and checks,
before anything runs, every problem at once: unknown or missing inputs, duplicate names,
cycles, output types that do not fit the inputs they feed, invalid parameters.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

import networkx as nx
import pydantic

from orchestrator.errors import InvalidPipeline, ParamError, PipelineError, did_you_mean
from orchestrator.model.step import HashContent, Node, Output, Step, new_builder, set_builder

# -- types ----------------------------------------------------------------------------


def type_name(t: Any) -> str:
    """`pandas.DataFrame`, `sklearn.BaseEstimator`, `int`, `list[str]`: short and readable."""
    if t is Any or t is inspect.Parameter.empty:
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


def fits(out: Any, into: Any) -> bool:
    """Whether a value typed `out` may feed an input typed `into` (lenient on unknowns)."""
    if typing.get_origin(out) is typing.Annotated:
        out = typing.get_args(out)[0]
    if typing.get_origin(into) is typing.Annotated:
        into = typing.get_args(into)[0]
    if into in (Any, object, inspect.Parameter.empty) or out in (Any, inspect.Parameter.empty):
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


# -- parameter validation -------------------------------------------------------------

_adapters: dict[Any, pydantic.TypeAdapter[Any] | None] = {}


def _adapter(annotation: Any) -> pydantic.TypeAdapter[Any] | None:
    try:
        return _adapters[annotation]
    except (KeyError, TypeError):
        pass
    try:
        adapter: pydantic.TypeAdapter[Any] | None = pydantic.TypeAdapter(annotation)
    except (pydantic.PydanticSchemaGenerationError, TypeError):
        adapter = None
    try:
        _adapters[annotation] = adapter
    except TypeError:
        pass
    return adapter


def validate_value(annotation: Any, value: Any, where: str) -> Any:
    """Validate one parameter value against its type hint; raise ParamError naming `where`."""
    if annotation in (Any, inspect.Parameter.empty):
        return value
    adapter = _adapter(annotation)
    if adapter is None:
        return value
    try:
        return adapter.validate_python(value)
    except pydantic.ValidationError as exc:
        errs = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"]
            for e in exc.errors()
        )
        raise ParamError(
            f"{where}: expected {type_name(annotation)}, got {value!r} ({errs})"
        ) from None


def parse_cli_value(raw: str) -> Any:
    """`--param k=v` values: JSON when it parses (numbers, lists, true), else the string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def has_hash_content(annotation: Any) -> bool:
    return typing.get_origin(annotation) is typing.Annotated and any(
        isinstance(m, HashContent) for m in typing.get_args(annotation)[1:]
    )


# -- graph ----------------------------------------------------------------------------


@dataclasses.dataclass
class Graph:
    """A validated pipeline graph with its execution plan."""

    pipeline: str
    nodes: dict[str, Node]
    dag: nx.DiGraph
    order: list[str]
    params: dict[str, Any]

    def parents(self, name: str) -> list[str]:
        return list(self.dag.predecessors(name))

    def children(self, name: str) -> list[str]:
        return list(self.dag.successors(name))

    def descendants(self, name: str) -> set[str]:
        return nx.descendants(self.dag, name)

    @classmethod
    def build(
        cls, pipeline: str, nodes: Iterable[Node], params: dict[str, Any] | None = None
    ) -> Graph:
        nodes = list(nodes)
        problems: list[str] = []
        by_name: dict[str, Node] = {}
        for node in nodes:
            problems.extend(node.problems)
            if node.name in by_name:
                problems.append(
                    f"duplicate step name '{node.name}': two steps are named '{node.name}' "
                    f"(steps '{by_name[node.name].step.ref}' and '{node.step.ref}'); "
                    "give one another name with `_name=`"
                )
                continue
            by_name[node.name] = node
        dag: nx.DiGraph = nx.DiGraph()
        dag.add_nodes_from(by_name)
        for node in by_name.values():
            _check_node(node, by_name, dag, problems)
        order: list[str] = []
        if not nx.is_directed_acyclic_graph(dag):
            cycle = [u for u, _ in nx.find_cycle(dag)]
            path = " -> ".join([*cycle, cycle[0]])
            problems.append(f"cycle between steps: {path}")
        else:
            order = list(nx.topological_sort(dag))
        if problems:
            raise InvalidPipeline(pipeline, problems)
        return cls(pipeline, by_name, dag, order, dict(params or {}))


def _check_node(node: Node, by_name: dict[str, Node], dag: nx.DiGraph, problems: list[str]) -> None:
    step = node.step
    args = step.arguments
    for key, value in node.bindings.items():
        if key not in args:
            problems.append(
                f"step '{node.name}' has no input or parameter '{key}'{did_you_mean(key, args)}; "
                f"it takes: {', '.join(args) or 'nothing'}"
            )
            continue
        expected = args[key].annotation
        if isinstance(value, Output):
            src = by_name.get(value.node)
            if src is None:
                problems.append(
                    f"step '{node.name}' input '{key}' refers to unknown step '{value.node}'"
                    f"{did_you_mean(value.node, by_name)}"
                )
                continue
            if value.index >= len(src.step.outputs):
                problems.append(
                    f"step '{node.name}' input '{key}' refers to output {value.index} of step "
                    f"'{src.name}', which has {len(src.step.outputs)} output(s)"
                )
                continue
            out_type = src.step.outputs[value.index]
            if not fits(out_type, expected):
                problems.append(
                    f"type mismatch: step '{src.name}' outputs {type_name(out_type)} but step "
                    f"'{node.name}' input '{key}' expects {type_name(expected)}"
                )
            dag.add_edge(src.name, node.name)
        else:
            try:
                node.bindings[key] = validate_value(
                    expected, value, f"step '{node.name}' parameter '{key}'"
                )
            except ParamError as exc:
                problems.append(f"invalid parameter: {exc}")
    missing = [a.name for a in args.values() if a.required and a.name not in node.bindings]
    if missing:
        problems.append(
            f"step '{node.name}' is missing required input(s) {', '.join(repr(m) for m in missing)}"
        )


# -- pipelines ------------------------------------------------------------------------

_REF = re.compile(r"^(?P<node>[^\[\]]+)(\[(?P<idx>\d+)\])?$")


class Pipeline:
    """A pipeline: a function whose body wires steps. Build it with `.build(**params)`."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.__doc__ = fn.__doc__
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
        self.param_specs: dict[str, tuple[Any, Any]] = {}
        for p in sig.parameters.values():
            if p.default is inspect.Parameter.empty:
                raise PipelineError(
                    f"pipeline '{self.name}': parameter '{p.name}' needs a default value"
                )
            self.param_specs[p.name] = (hints.get(p.name, type(p.default)), p.default)

    def defaults(self) -> dict[str, Any]:
        return {k: d for k, (_, d) in self.param_specs.items()}

    def resolve_params(
        self, overrides: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Split overrides into pipeline params (validated) and `step.param` overrides."""
        params = self.defaults()
        per_step: dict[str, dict[str, Any]] = {}
        for key, value in (overrides or {}).items():
            if "." in key:
                node, _, arg = key.partition(".")
                per_step.setdefault(node, {})[arg] = value
                continue
            if key not in self.param_specs:
                known = ", ".join(self.param_specs) or "none"
                raise ParamError(
                    f"pipeline '{self.name}' has no parameter '{key}'"
                    f"{did_you_mean(key, self.param_specs)}"
                    f" (its parameters: {known}; use STEP.PARAM to set a step's parameter)"
                )
            annotation = self.param_specs[key][0]
            params[key] = validate_value(
                annotation, value, f"pipeline '{self.name}' parameter '{key}'"
            )
        return params, per_step

    def run(self, **params: Any) -> Any:
        """Run this pipeline with `params` (see `orchestrator.api.run`) -> `orchestrator.Run`."""
        from orchestrator.api import run

        return run(self, params)

    def build(self, overrides: dict[str, Any] | None = None) -> Graph:
        params, per_step = self.resolve_params(overrides)
        builder = new_builder()
        token = set_builder(builder)
        try:
            self.fn(**params)
        finally:
            set_builder(None)
            del token
        by_name = {n.name: n for n in builder.nodes}
        for node_name, values in per_step.items():
            node = by_name.get(node_name)
            if node is None:
                raise ParamError(
                    f"pipeline '{self.name}' has no step '{node_name}'"
                    f"{did_you_mean(node_name, by_name)}"
                )
            for arg, value in values.items():
                if isinstance(node.bindings.get(arg), Output):
                    raise ParamError(
                        f"step '{node_name}' argument '{arg}' is an input fed by step "
                        f"'{node.bindings[arg].node}', not a parameter"
                    )
                if arg not in node.step.arguments:
                    raise ParamError(
                        f"step '{node_name}' has no parameter '{arg}'"
                        f"{did_you_mean(arg, node.step.arguments)}"
                    )
                node.bindings[arg] = value
        flat = dict(params)
        for node_name, values in per_step.items():
            flat.update({f"{node_name}.{k}": v for k, v in values.items()})
        return Graph.build(self.name, builder.nodes, flat)

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
        return Graph.build(name, nodes)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def pipeline(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Declare a pipeline: `@pipeline` over a function that calls steps."""
    if fn is not None:
        return Pipeline(fn, name)
    return lambda f: Pipeline(f, name)
