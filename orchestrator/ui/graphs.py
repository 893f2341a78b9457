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

A mapped step is recorded as a node `train` and one row per item, `train[0]`,
`train[1]`...: the graph draws the items collapsed into their parent (`count`: how many,
`states`: how many in each state), their edges moved onto it. Every node carries its
recorded `duration` (seconds, None before it ran) so the page can print it.

`timeline(run, steps)` lays out each step's start and end relative to the run's start, as
percentages of the run's span, for the run page's Gantt view (no JavaScript needed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
import time
from typing import Any

from orchestrator.loader import load_target
from orchestrator.model.step import sources

_ITEM = re.compile(r"^(?P<base>.+)\[(?P<index>[0-9]+)\]$")


def mapped_base(name: str) -> str | None:
    """`train` for a mapped item `train[3]`, else None."""
    got = _ITEM.match(name)
    return got.group("base") if got else None


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
    nodes, moved = collapse_mapped(nodes, rows)
    known = {n["id"] for n in nodes}
    edges: list[dict[str, str]] = []
    pairs: set[tuple[str, str, str]] = set()
    guessed = [e for e in inferred_edges(steps) if e[1] not in seen]
    for src, dst, arg in [*(shape.edges if shape else ()), *guessed]:
        src, dst = moved.get(src, src), moved.get(dst, dst)
        if (src, dst, arg) in pairs or src == dst or src not in known or dst not in known:
            continue
        pairs.add((src, dst, arg))
        edges.append({"source": src, "target": dst, "input": arg})
    for n in nodes:
        n["parent"] = n["id"].rpartition(".")[0] or None
    return {"nodes": nodes, "edges": edges, "groups": groups_of(shape, [n["id"] for n in nodes])}


def collapse_mapped(
    nodes: list[dict[str, Any]], rows: dict[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Nodes with mapped items folded into their parent (made if absent), each with its
    `duration`; and {item: parent} for moving edges."""
    moved = {n["id"]: b for n in nodes if (b := mapped_base(n["id"]))}
    out: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for n in nodes:
        base = moved.get(n["id"])
        if base is None:
            node = n | {"duration": (rows.get(n["id"]) or {}).get("duration")}
            out.append(node)
            by_id[n["id"]] = node
            continue
        parent = by_id.get(base)
        if parent is None:
            parent = {"id": base, "kind": n["kind"], "state": n["state"], "duration": None}
            out.append(parent)
            by_id[base] = parent
        parent["count"] = parent.get("count", 0) + 1
        states = parent.setdefault("states", {})
        states[n["state"]] = states.get(n["state"], 0) + 1
    return out, moved


def _offset(at: dt.datetime | None, start: dt.datetime) -> float | None:
    return None if at is None else max(0.0, (at - start).total_seconds())


def timeline(run: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"span": seconds, "bars": [{name, state, start, end, left, width}]}`: each step
    that started, in start order; `start`/`end` are seconds from the run's start (a
    running step ends now), `left`/`width` percentages of the span."""
    began = run["started_at"]
    clock = dt.datetime.now(dt.UTC)
    timed = [s for s in steps if s.get("started_at") is not None]
    timed.sort(key=lambda s: (s["started_at"], s["name"]))
    bars = []
    for s in timed:
        start = _offset(s["started_at"], began) or 0.0
        end = _offset(s.get("ended_at") or clock, began) or start
        bars.append({"name": s["name"], "state": s["state"], "start": start, "end": end})
    ended = _offset(run.get("ended_at") or clock, began) or 0.0
    span = max([ended, *(b["end"] for b in bars), 1e-3])
    for b in bars:
        b["left"] = round(100 * b["start"] / span, 3)
        b["width"] = round(max(0.4, 100 * (b["end"] - b["start"]) / span), 3)
    return {"span": span, "bars": bars}
