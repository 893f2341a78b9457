"""The graph of a pipeline: nodes validated and planned. No I/O, no execution.

`Graph.build` turns traced `Node`s (see `model.pipeline`) into a `model.dag.Dag` and
checks, before anything runs, every problem at once: invalid or duplicate names, unknown
or missing inputs, cycles, output types that do not fit the inputs they feed, invalid
parameters. A node named `a.b.train` is step `train` of sub-pipeline call `b` inside
sub-pipeline call `a`; `groups` maps each such namespace to the pipeline it calls.

The type helpers of `model.types` are re-exported here for the modules that read them
with the graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from orchestrator.errors import InvalidPipeline, ParamError, did_you_mean
from orchestrator.model import conditions
from orchestrator.model.dag import Dag
from orchestrator.model.step import Node, Output, OutputList, name_problem
from orchestrator.model.types import (
    fits,
    has_hash_content,
    item_type,
    parse_cli_text,
    parse_cli_value,
    type_name,
    validate_value,
)

__all__ = [
    "Graph",
    "fits",
    "has_hash_content",
    "parse_cli_text",
    "parse_cli_value",
    "type_name",
    "validate_value",
]

# -- graph ----------------------------------------------------------------------------


@dataclasses.dataclass
class Graph:
    """A validated pipeline graph with its execution plan."""

    pipeline: str
    nodes: dict[str, Node]
    dag: Dag
    order: list[str]
    params: dict[str, Any]
    groups: dict[str, str] = dataclasses.field(default_factory=dict)

    def parents(self, name: str) -> list[str]:
        return list(self.dag.predecessors(name))

    def children(self, name: str) -> list[str]:
        return list(self.dag.successors(name))

    def descendants(self, name: str) -> set[str]:
        return self.dag.descendants(name)

    def ancestors(self, name: str) -> set[str]:
        return self.dag.ancestors(name)

    def group_of(self, name: str) -> str | None:
        """The namespace a node (or a namespace) sits in: `a.b` for `a.b.train`."""
        parent = name.rpartition(".")[0]
        return parent or None

    def output_names(self, name: str) -> list[str]:
        """The names of a node's outputs (declared, else `output` / `output_<i>`)."""
        return self.nodes[name].step.output_names

    @classmethod
    def build(
        cls,
        pipeline: str,
        nodes: Iterable[Node],
        params: dict[str, Any] | None = None,
        groups: dict[str, str] | None = None,
    ) -> Graph:
        nodes = list(nodes)
        problems: list[str] = []
        by_name: dict[str, Node] = {}
        for node in nodes:
            problems.extend(node.problems)
            bad = [p for part in node.name.split(".") if (p := name_problem(part, "step call"))]
            if bad and not node.problems:
                problems.append(bad[0])
            if node.name in by_name:
                problems.append(
                    f"duplicate step name '{node.name}': two steps are named '{node.name}' "
                    f"(steps '{by_name[node.name].step.ref}' and '{node.step.ref}'); "
                    f'name one call otherwise, e.g. `{node.step.name}.named("other")(...)`'
                )
                continue
            by_name[node.name] = node
        dag = Dag()
        dag.add_nodes_from(by_name)
        for node in by_name.values():
            _check_node(node, by_name, dag, problems)
            conditions.check(node, by_name, dag, problems)
        order = dag.topological_order()
        if order is None:
            problems.append(f"cycle between steps: {_cycle(dag)}")
        if problems:
            raise InvalidPipeline(pipeline, problems)
        return cls(pipeline, by_name, dag, order or [], dict(params or {}), dict(groups or {}))


def _cycle(dag: Dag) -> str:
    """One cycle of a graph that has one, as `a -> b -> a` (networkx finds it)."""
    import networkx as nx

    cycle = [u for u, _ in nx.find_cycle(dag.to_networkx())]
    return " -> ".join([*cycle, cycle[0]])


def _check_node(node: Node, by_name: dict[str, Node], dag: Dag, problems: list[str]) -> None:
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
        if isinstance(value, OutputList):
            _check_list(node, key, value, expected, by_name, dag, problems)
        elif isinstance(value, Output):
            if key in node.mapped:
                where = f"step '{node.name}' mapped input '{key}'"
                depth = 2 if key in node.inner else 1
                _check_edge(node, where, value, expected, by_name, dag, problems, mapped=depth)
            else:
                where = f"step '{node.name}' input '{key}'"
                _check_edge(node, where, value, expected, by_name, dag, problems)
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


def _check_list(
    node: Node,
    key: str,
    value: OutputList,
    expected: Any,
    by_name: dict[str, Node],
    dag: Dag,
    problems: list[str],
) -> None:
    """Each output of a list input must fit the list's item type."""
    item = item_type(expected)
    if item is None:
        problems.append(
            f"step '{node.name}' input '{key}' is given a list of {len(value.items)} outputs "
            f"but expects {type_name(expected)}; type it list[...] to take several outputs"
        )
        return
    for i, out in enumerate(value.items):
        where = f"step '{node.name}' input '{key}' item {i}"
        _check_edge(node, where, out, item, by_name, dag, problems)


def _check_edge(
    node: Node,
    where: str,
    value: Output,
    expected: Any,
    by_name: dict[str, Node],
    dag: Dag,
    problems: list[str],
    *,
    mapped: int = 0,
) -> None:
    src = by_name.get(value.node)
    if src is None:
        problems.append(
            f"{where} refers to unknown step '{value.node}'{did_you_mean(value.node, by_name)}"
        )
        return
    if value.index >= len(src.step.outputs):
        problems.append(
            f"{where} refers to output {value.index} of step '{src.name}', which has "
            f"{len(src.step.outputs)} output(s)"
        )
        return
    out_type = src.output_type(value.index)
    for _ in range(int(mapped)):  # a mapped input feeds each element (of each element)
        element = item_type(out_type)
        out_type = Any if element is None else element
    if not fits(out_type, expected):
        which = f" output '{value.name}'" if value.name else ""
        each = " elements" if mapped else ""
        problems.append(
            f"type mismatch: step '{src.name}'{which} outputs{each} {type_name(out_type)} but "
            f"{where} expects {type_name(expected)}"
        )
    dag.add_edge(src.name, node.name)
