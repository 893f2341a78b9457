"""The graph of a run or a pipeline, as the UI draws it: `{nodes, edges}` of plain data.

The store records a step's row only once the step is ready, so a running run's later
steps are not in `step_runs` yet: the full shape comes from loading the run's target and
building it with the run's parameters, as `orch resume` does. Loading runs user code,
so shapes are cached per (target, parameters) and a target that cannot be loaded (moved,
edited, a synthetic run) is remembered for a while instead of retried on every request.
When no shape can be had, edges are inferred from the recorded artifacts: a step that
takes as input the content hash another step output is fed by it.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any

from orchestrator.loader import load_target


@dataclasses.dataclass(frozen=True)
class Shape:
    """A pipeline's steps in plan order (name, kind) and data edges (source, target, input)."""

    nodes: tuple[tuple[str, str], ...]
    edges: tuple[tuple[str, str, str], ...]


def shape_of(pipe: Any, params: dict[str, Any]) -> Shape:
    """Build a loaded pipeline with `params` and read its nodes and edges."""
    graph = pipe.build(params)
    nodes = tuple((n, graph.nodes[n].step.kind) for n in graph.order)
    edges = tuple(
        (out.node, n, arg) for n in graph.order for arg, out in graph.nodes[n].inputs().items()
    )
    return Shape(nodes, edges)


class GraphCache:
    """Shapes by (target, parameters); failures are kept `retry_after` seconds."""

    def __init__(self, retry_after: float = 30.0, max_entries: int = 256) -> None:
        self.retry_after, self.max_entries = retry_after, max_entries
        self._lock = threading.Lock()
        self._shapes: dict[str, tuple[Shape | None, float]] = {}

    def shape(self, target: str, params: dict[str, Any]) -> Shape | None:
        key = json.dumps([target, params], sort_keys=True, default=str)
        with self._lock:
            got = self._shapes.get(key)
            if got is not None and (got[0] is not None or time.monotonic() < got[1]):
                return got[0]
            try:  # loading imports user modules: one at a time
                found: Shape | None = shape_of(load_target(target), params)
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
    """`{"nodes": [{id, kind, state}], "edges": [{source, target, input}]}` of a run.

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
    return {"nodes": nodes, "edges": edges}
