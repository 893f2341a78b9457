"""A sweep as one graph: a pipeline built once per combination, merged where it agrees.

`plan_sweep(pipeline, combinations, base)` builds the pipeline's graph once per
combination (the base overrides, then the combination's values over them) and merges
the graphs into one validated `Graph`:

* a node's *identity* is its name in its own graph, its step, its resolved parameters
  and its parents' identities (recursively), so two nodes with one identity compute the
  same thing;
* a node whose identity is in every combination is shared, under its plain name
  (`ingest`); any other is placed in the namespace of the first combination that has
  it (`c0.train`) and shared by the later combinations that have it too, so it runs
  once (a `features` step varied by one axis of two values runs twice, not once per
  combination);
* `SweepPlan.nodes[combination][name]` is where each node of a combination's own graph
  sits in the merged graph; each combination's namespace is a group of the graph.

The merged graph's `params` are the resolved parameters every combination shares.
Building runs user code (the pipeline body); nothing else here does I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic

from orchestrator.model.graph import Graph
from orchestrator.model.params import CliText, ParamTree, merge, nest, plain
from orchestrator.model.pipeline import Pipeline
from orchestrator.model.step import Node, Output


@dataclasses.dataclass(frozen=True)
class Combination:
    """One point of a sweep: its name (its namespace), its values as given, as resolved."""

    name: str
    values: dict[str, Any]  # path -> the value as given (CLI text or a typed value)
    params: dict[str, Any]  # path -> the value the run uses


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """The merged graph of a sweep and where each combination's nodes sit in it."""

    graph: Graph
    combinations: list[Combination]
    nodes: dict[str, dict[str, str]]  # combination -> its node name -> merged node name

    def record(self, **extra: Any) -> dict[str, Any]:
        """The JSON-able description a run keeps to rebuild its table (and its graph)."""
        evaluate = {
            c.name: {
                own: merged
                for own, merged in self.nodes[c.name].items()
                if self.graph.nodes[merged].step.kind == "evaluate"
            }
            for c in self.combinations
        }
        return {
            **extra,
            "combinations": [
                {
                    "name": c.name,
                    "values": keep(c.values),
                    "params": {k: plain_value(v) for k, v in c.params.items()},
                    "evaluate": evaluate[c.name],
                }
                for c in self.combinations
            ],
        }


def plan_sweep(
    pipeline: Pipeline,
    combinations: list[dict[str, Any]],
    base: Mapping[str, Any] | None = None,
) -> SweepPlan:
    """Build `pipeline` once per combination over `base` and merge the graphs."""
    built: list[tuple[Combination, Graph]] = []
    for i, values in enumerate(combinations):
        graph = pipeline.build(_overrides(base, values))
        params = {path: _lookup(graph.params, path, value) for path, value in values.items()}
        built.append((Combination(f"c{i}", dict(values), params), graph))
    merged, names = _merge(pipeline.name, built)
    return SweepPlan(merged, [c for c, _ in built], names)


def _overrides(base: Mapping[str, Any] | None, values: dict[str, Any]) -> ParamTree:
    tree = ParamTree(merge(nest(base or {}), nest(values)))
    tree.source = getattr(base, "source", None)
    return tree


def _lookup(tree: Any, path: str, given: Any) -> Any:
    """The resolved value at dotted `path` of a params tree (fields of models too)."""
    node = tree
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, pydantic.BaseModel) and part in type(node).model_fields:
            node = getattr(node, part)
        else:
            return plain(given)
    return node


def _merge(
    pipeline: str, built: list[tuple[Combination, Graph]]
) -> tuple[Graph, dict[str, dict[str, str]]]:
    idents = [_identities(g) for _, g in built]
    counts: dict[str, int] = {}
    for ids in idents:
        for ident in set(ids.values()):
            counts[ident] = counts.get(ident, 0) + 1
    placed: dict[str, str] = {}
    nodes: list[Node] = []
    groups: dict[str, str] = {}
    names: dict[str, dict[str, str]] = {}
    for (combo, graph), ids in zip(built, idents, strict=True):
        where = names[combo.name] = {}
        for name in graph.order:
            ident = ids[name]
            if ident not in placed:
                shared = counts[ident] == len(built)
                placed[ident] = name if shared else f"{combo.name}.{name}"
                nodes.append(_copy(graph.nodes[name], placed[ident], where))
                _group(graph, name, placed[ident], combo.name, groups)
            where[name] = placed[ident]
    return Graph.build(pipeline, nodes, _common(built), groups), names


def _group(graph: Graph, name: str, merged: str, combo: str, groups: dict[str, str]) -> None:
    """Record the namespaces `merged` sits in: the combination's and its sub-pipelines'."""
    space = graph.group_of(name)
    while space is not None:
        at = space if merged == name else f"{combo}.{space}"
        groups.setdefault(at, graph.groups.get(space, ""))
        space = graph.group_of(space)
    if merged != name:
        groups.setdefault(combo, graph.pipeline)


def _copy(node: Node, name: str, where: dict[str, str]) -> Node:
    bindings = {
        k: dataclasses.replace(v, node=where[v.node]) if isinstance(v, Output) else v
        for k, v in node.bindings.items()
    }
    return Node(name, node.step, bindings, explicit_name=True)


def _identities(graph: Graph) -> dict[str, str]:
    """Each node's identity: name, step, parameters and the parents' identities."""
    out: dict[str, str] = {}
    for name in graph.order:
        node = graph.nodes[name]
        inputs = {
            k: [out[v.node], v.index] for k, v in sorted(node.bindings.items())
            if isinstance(v, Output)
        }  # fmt: skip
        doc = json.dumps(
            [name, node.step.ref, node.params(), inputs], sort_keys=True, default=_jsonable
        )
        out[name] = hashlib.sha256(doc.encode()).hexdigest()
    return out


def _common(built: list[tuple[Combination, Graph]]) -> dict[str, Any]:
    """The top-level resolved parameters every combination's graph has alike."""
    first = built[0][1].params
    return {k: v for k, v in first.items() if all(g.params.get(k) == v for _, g in built[1:])}


def _jsonable(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(map(repr, value))
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def keep(tree: Mapping[str, Any]) -> dict[str, Any]:
    """A tree of overrides as JSON keeps it: `{"tree", "text"}`, `text` the key paths of
    its command-line leaves, so `restore` reads them strictly again (text stays text)."""
    text: list[list[str]] = []

    def walk(node: Any, at: list[str]) -> Any:
        if isinstance(node, CliText):
            text.append(at)
            return str(node)
        if isinstance(node, Mapping):
            return {str(k): walk(v, [*at, str(k)]) for k, v in node.items()}
        return plain_value(node)

    return {"tree": walk(tree, []), "text": text}


def restore(kept: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides `keep` kept, their command-line leaves `CliText` again."""
    tree = json.loads(json.dumps(kept.get("tree") or {}))
    for at in kept.get("text") or []:
        node = tree
        for key in at[:-1]:
            node = node[key]
        node[at[-1]] = CliText(node[at[-1]])
    return dict(tree)


def plain_value(value: Any) -> Any:
    """A value as JSON keeps it: CLI text read untyped, models dumped, others as text."""
    if isinstance(value, CliText):
        return plain(value)
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=_jsonable))
