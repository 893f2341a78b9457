"""The graph of a run or a pipeline, as the UI draws it: `{nodes, edges}` of plain data.

The store records a step's row only once the step is ready, so a running run's later
steps are not in `step_runs` yet: the full shape comes from loading the run's target and
building it with the run's parameters (or its recorded sweep), as `orch resume` does.
Loading runs user code, so shapes are cached per (target, parameters) and a target that
cannot be loaded (moved, edited, a synthetic run) is remembered for a while instead of
retried on every request.
When no shape can be had, edges are inferred from the recorded artifacts: a step that
takes as input the content hash another step output is fed by it.

A step named `a.b.train` sits in the group of sub-pipeline call `a.b`, itself in group
`a`: groups come from the dots of the names (the shape adds which pipeline each calls),
and the page draws them as compound nodes. The shape also knows each step's declared
output names, which label its outputs.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any

from orchestrator.loader import load_target
from orchestrator.model.step import sources


@dataclasses.dataclass(frozen=True)
class Shape:
    """A pipeline's steps in plan order (name, kind) and edges (source, target, input); the
    edge of a condition has input `when`."""

    nodes: tuple[tuple[str, str], ...]
    edges: tuple[tuple[str, str, str], ...]
    groups: tuple[tuple[str, str], ...] = ()  # (namespace, the pipeline it calls)
    outputs: tuple[tuple[str, tuple[str | None, ...]], ...] = ()  # (step, declared names)

    def output_names(self, step: str) -> tuple[str | None, ...]:
        return dict(self.outputs).get(step, ())


def shape_of(pipe: Any, params: dict[str, Any], sweep: dict[str, Any] | None = None) -> Shape:
    """Build a loaded pipeline with `params` (or the `sweep` a run recorded) and read it."""
    if sweep is not None:
        from orchestrator.sweeps import rebuild

        graph = rebuild(pipe, sweep).graph
    else:
        graph = pipe.build(params)
    nodes = tuple((n, graph.nodes[n].step.kind) for n in graph.order)
    edges = tuple(
        (out.node, n, arg)
        for n in graph.order
        for arg, value in graph.nodes[n].inputs().items()
        for out in sources(value)
    )
    edges += tuple(
        (c.source.node, n, "when") for n in graph.order if (c := graph.nodes[n].condition)
    )
    groups = tuple(sorted(graph.groups.items()))
    outputs = tuple((n, tuple(graph.nodes[n].step.declared_output_names)) for n in graph.order)
    return Shape(nodes, edges, groups, outputs)


def named_outputs(shape: Shape | None, step: dict[str, Any]) -> dict[str, Any]:
    """`step` with each output labelled by its declared name, where the shape has one."""
    names = shape.output_names(step["name"]) if shape else ()
    outputs = [
        dict(o) | ({"name": names[i]} if i < len(names) and names[i] else {})
        for i, o in enumerate(step.get("outputs") or [])
    ]
    return step | {"outputs": outputs} if step.get("outputs") else step


def groups_of(shape: Shape | None, names: list[str]) -> list[dict[str, Any]]:
    """`[{id, label, parent}]`: each namespace of the step names, outermost first."""
    calls = dict(shape.groups) if shape else {}
    spaces: set[str] = set(calls)
    for name in names:
        parts = name.split(".")[:-1]
        spaces |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    out = []
    for ns in sorted(spaces, key=lambda x: (x.count("."), x)):
        local = ns.rpartition(".")[2]
        pipe = calls.get(ns)
        label = f"{local} ({pipe})" if pipe and pipe != local else local
        out.append({"id": ns, "label": label, "parent": ns.rpartition(".")[0] or None})
    return out


class GraphCache:
    """Shapes by (target, parameters); failures are kept `retry_after` seconds."""

    def __init__(self, retry_after: float = 30.0, max_entries: int = 256) -> None:
        self.retry_after, self.max_entries = retry_after, max_entries
        self._lock = threading.Lock()
        self._shapes: dict[str, tuple[Shape | None, float]] = {}

    def of_run(self, run: dict[str, Any]) -> Shape | None:
        """The shape of a stored run (a row of `runs`)."""
        return self.shape(run["target"], run.get("params") or {}, run.get("trigger"))

    def shape(
        self, target: str, params: dict[str, Any], trigger: dict[str, Any] | None = None
    ) -> Shape | None:
        """The shape of `target` with `params`; of its sweep if `trigger` records one."""
        sweep = trigger if (trigger or {}).get("kind") == "sweep" else None
        key = json.dumps([target, params, sweep], sort_keys=True, default=str)
        with self._lock:
            got = self._shapes.get(key)
            if got is not None and (got[0] is not None or time.monotonic() < got[1]):
                return got[0]
            try:  # loading imports user modules: one at a time
                found: Shape | None = shape_of(load_target(target), params, sweep)
            except Exception:  # any error in user code means: no shape, infer instead
                found = None
            if len(self._shapes) >= self.max_entries:
                self._shapes.clear()
            self._shapes[key] = (found, time.monotonic() + self.retry_after)
            return found


def inferred_edges(steps: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Edges from recorded content hashes: an input hash names the step that output it."""
    producers: dict[str, str] = {}
    for s in steps:
        for out in s.get("outputs") or []:
            producers.setdefault(out["hash"], s["name"])
    return [
        (producers[h], s["name"], arg)
        for s in steps
        for arg, h in (s.get("inputs") or {}).items()
        if h in producers and producers[h] != s["name"]
    ]


def run_graph(shape: Shape | None, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"nodes": [{id, kind, state, parent}], "edges": [{source, target, input}],
    "groups": [{id, label, parent}]}` of a run (`parent`: the group a node sits in).

    Nodes are the shape's steps (those with no row yet are `pending`) plus any recorded
    step the shape lacks. Edges are the shape's; artifacts only tell the edges into steps
    the shape lacks (two steps may output the same bytes, e.g. a validation that passes
    its frame through unchanged, so a hash alone may name the wrong producer)."""
    rows = {s["name"]: s for s in steps}
    nodes: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name, kind in shape.nodes if shape else ():
        row = rows.get(name)
        nodes.append({"id": name, "kind": kind, "state": row["state"] if row else "pending"})
        seen.add(name)
    nodes += [
        {"id": s["name"], "kind": s["kind"], "state": s["state"]}
        for s in steps
        if s["name"] not in seen
    ]
    known = {n["id"] for n in nodes}
    edges: list[dict[str, str]] = []
    pairs: set[tuple[str, str, str]] = set()
    guessed = [e for e in inferred_edges(steps) if e[1] not in seen]
    for src, dst, arg in [*(shape.edges if shape else ()), *guessed]:
        if (src, dst, arg) in pairs or src not in known or dst not in known:
            continue
        pairs.add((src, dst, arg))
        edges.append({"source": src, "target": dst, "input": arg})
    for n in nodes:
        n["parent"] = n["id"].rpartition(".")[0] or None
    return {"nodes": nodes, "edges": edges, "groups": groups_of(shape, [n["id"] for n in nodes])}
