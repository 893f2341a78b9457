"""Tracing a pipeline body: step calls become nodes, sub-pipeline calls become namespaces.

A `Builder` is active (see `step.building`) while a `@pipeline` body runs. It keeps a
stack of `Scope`s, one per pipeline call being traced: the root (the target pipeline)
and one per sub-pipeline call, whose prefix (`data_science.`) namespaces every step
called inside it. Each scope owns its part of the override tree (`params.py`); a step
call takes the overrides under its name, a sub-pipeline call the ones under its
namespace. Invariants:

* a node's name is its scope's prefix plus a local name that follows `NAME_RULE`;
  a second unnamed call of a step (or a sub-pipeline) in one scope is `<name>_2`;
* every override key is consumed by a parameter, a step or a sub-pipeline, or reported
  by `finish()`, together with every invalid override value, in one `ParamError`;
* `resolved` maps each dotted parameter path to the value the run uses (pipeline and
  sub-pipeline parameters all, step parameters where overridden): `graph.params`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from orchestrator.errors import ParamError, PipelineError, did_you_mean
from orchestrator.model.params import CliText, apply_override, has_cli_text, nest
from orchestrator.model.step import (
    Node,
    Output,
    OutputList,
    Step,
    is_input,
    name_problem,
    sources,
)


@dataclasses.dataclass
class Scope:
    """One pipeline call being traced."""

    prefix: str  # "" at the root, "data_science." inside a sub-pipeline call
    label: str  # "pipeline 'main'", "pipeline 'data_science' (called as 'ds')"
    overrides: dict[str, Any]
    params: tuple[str, ...] = ()
    names: dict[str, str] = dataclasses.field(default_factory=dict)  # local name -> kind
    consumed: set[str] = dataclasses.field(default_factory=set)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)  # base -> last suffix

    def take(self, key: str) -> Any:
        self.consumed.add(key)
        return self.overrides.get(key)


class Builder:
    """Collects nodes, namespaces (`groups`) and resolved parameters while a body runs."""

    def __init__(self, pipeline: str, overrides: Mapping[str, Any], source: str | None) -> None:
        self.pipeline = pipeline
        self.source = source
        self.nodes: list[Node] = []
        self.groups: dict[str, str] = {}  # namespace -> the sub-pipeline it calls
        self.resolved: dict[str, Any] = {}
        self.problems: list[str] = []
        self.max_parallel: int | None = None  # set while a mapped sub-pipeline is traced
        self.scopes: list[Scope] = [Scope("", f"pipeline '{pipeline}'", nest(overrides))]
        self._all: list[Scope] = list(self.scopes)

    @property
    def scope(self) -> Scope:
        return self.scopes[-1]

    # -- names -------------------------------------------------------------------------
    def _local_name(self, base: str, explicit: str | None, kind: str) -> str:
        scope = self.scope
        if explicit is not None:
            name = explicit
        else:
            name, n = base, scope.counts.get(base, 1)
            if n > 1:
                name = f"{base}_{n}"
            while name in scope.names:
                n += 1
                name = f"{base}_{n}"
            scope.counts[base] = n
        if name in scope.names and scope.names[name] != kind:
            raise PipelineError(
                f"{scope.label} uses the name '{scope.prefix}{name}' for a step and for a "
                "sub-pipeline; name one of the calls otherwise"
            )
        if kind == "sub-pipeline" and name in scope.params:
            raise PipelineError(
                f"{scope.label}: sub-pipeline call '{scope.prefix}{name}' has the name of one "
                "of its parameters; name the call otherwise"
            )
        scope.names.setdefault(name, kind)
        return name

    # -- steps -------------------------------------------------------------------------
    def add_step(
        self, step: Step[Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str | None
    ) -> Node:
        local = self._local_name(step.name, name, "step")
        node = Node(self.scope.prefix + local, step, {}, explicit_name=name is not None)
        if name is not None and (problem := name_problem(name, "step call")):
            node.problems.append(problem)
        names = list(step.arguments)
        if len(args) > len(names):
            node.problems.append(
                f"step '{node.name}' takes {len(names)} arguments but {len(args)} were given "
                "positionally"
            )
        for arg_name, value in zip(names, args, strict=False):
            node.bindings[arg_name] = value
        for key, value in kwargs.items():
            if key in node.bindings:
                node.problems.append(f"step '{node.name}' got argument '{key}' twice")
            node.bindings[key] = value
        for key, value in node.bindings.items():
            node.bindings[key] = _gather(node, key, value)
        if local in self.scope.overrides:
            self._override_step(node, self.scope.take(local))
        self.nodes.append(node)
        return node

    def _override_step(self, node: Node, values: Any) -> None:
        if not isinstance(values, Mapping):
            self.problems.append(
                f"'{node.name}' is a step, not a parameter: set one of its parameters with "
                f"{node.name}.PARAM=VALUE"
            )
            return
        args = node.step.arguments
        for arg, value in values.items():
            bound = node.bindings.get(arg)
            if arg not in args:
                self.problems.append(
                    f"step '{node.name}' has no parameter '{arg}'{did_you_mean(arg, args)}"
                )
            elif is_input(bound):
                feeds = ", ".join(f"'{o.node}'" for o in sources(bound))
                self.problems.append(
                    f"step '{node.name}' argument '{arg}' is an input fed by step "
                    f"{feeds}, not a parameter"
                )
            else:
                current = node.bindings.get(arg, args[arg].default)
                where = f"step '{node.name}' parameter '{arg}'"
                try:
                    node.bindings[arg] = apply_override(args[arg].annotation, current, value, where)
                except ParamError as exc:
                    self.problems.append(str(exc))
                    continue
                self.resolved[f"{node.name}.{arg}"] = node.bindings[arg]

    # -- sub-pipelines -----------------------------------------------------------------
    def enter(self, pipeline: str, name: str | None, params: tuple[str, ...]) -> Scope:
        """Open the namespace of a call of sub-pipeline `pipeline` (named `name`)."""
        parent = self.scope
        if name is not None and (problem := name_problem(name, "sub-pipeline call")):
            raise PipelineError(f"{parent.label}: {problem}")
        local = self._local_name(pipeline, name, "sub-pipeline")
        namespace = parent.prefix + local
        called = "" if local == pipeline else f" (called as '{namespace}')"
        subtree = parent.take(local) if local in parent.overrides else {}
        if not isinstance(subtree, Mapping):
            self.problems.append(
                f"'{namespace}' is a sub-pipeline, not a parameter: set one of its "
                f"parameters with {namespace}.PARAM=VALUE"
            )
            subtree = {}
        scope = Scope(namespace + ".", f"pipeline '{pipeline}'{called}", dict(subtree), params)
        self.groups[namespace] = pipeline
        self.scopes.append(scope)
        self._all.append(scope)
        return scope

    def leave(self) -> None:
        self.scopes.pop()

    # -- the end -----------------------------------------------------------------------
    def finish(self) -> None:
        """Raise one ParamError for every invalid override and every key nothing took."""
        problems = list(self.problems)
        for scope in self._all:
            for key in scope.overrides:
                if key not in scope.consumed:
                    problems.append(self._unknown(scope, key, scope.overrides[key]))
        if problems:
            raise ParamError("; ".join(dict.fromkeys(problems)))

    def _unknown(self, scope: Scope, key: str, value: Any) -> str:
        path = scope.prefix + key
        origin = ""
        if self.source and not has_cli_text(value):
            origin = f" (in {self.source})"
        if isinstance(value, Mapping) and not isinstance(value, CliText):
            choices = [scope.prefix + n for n in scope.names]
            return (
                f"{scope.label} has no step '{path}'{did_you_mean(path, choices)}{origin}; "
                f"its steps and sub-pipelines: {', '.join(choices) or 'none'}"
            )
        choices = [scope.prefix + p for p in scope.params]
        return (
            f"{scope.label} has no parameter '{path}'{did_you_mean(path, choices)}{origin} "
            f"(its parameters: {', '.join(choices) or 'none'}; use STEP.PARAM to set a "
            "step's parameter)"
        )


def _gather(node: Node, key: str, value: Any) -> Any:
    """A list or tuple of outputs bound to one argument becomes an `OutputList`; one that
    mixes outputs and plain values is a problem of the node."""
    if not isinstance(value, list | tuple) or not value:
        return value
    outs = [v for v in value if isinstance(v, Output)]
    if not outs:
        return value
    if len(outs) != len(value):
        i = next(i for i, v in enumerate(value) if not isinstance(v, Output))
        node.problems.append(
            f"step '{node.name}' input '{key}' mixes step outputs and plain values (item {i} "
            f"is {value[i]!r}); a list input takes step outputs only"
        )
        return value
    return OutputList(tuple(outs), as_tuple=isinstance(value, tuple))
