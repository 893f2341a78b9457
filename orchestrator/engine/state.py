"""The bookkeeping of one run: which steps are ready, finished, failed or skipped. Pure.

No I/O, no clock, no executor: the engine loop calls these methods, and they only move
steps between states and say what follows. The steps of the run (`members`) may be a
part of the graph (a partial run); they are closed upstream: every parent of a member is
a member.

State kept:

* `waiting[n]`: parents of n that have not finished; -1 once n is skipped (never ready);
* `consumers[n]`: children of n in this run that have not finished;
* `outputs[n]`: artifact refs of a finished n, which feed its children's keys and inputs;
* `reports[n]`: what the run says of n; absent until n is resolved, failed or skipped;
* `queue`: members whose parents have all finished, not yet resolved.

A mapped step (`Node.mapped`) is expanded when it is ready: `expand` adds one *child*
per element, `train[0]`, `train[1]`, ..., queued at once (their inputs are known), with
`maps[train]` counting the children not yet done. Children are not graph nodes: they
have no parents or children of their own here, and the mapped step finishes (with the
list refs of its children's outputs) when the last child is done.

Invariants: a member enters `queue` once, when its `waiting` count reaches 0; `outputs`
has an entry exactly for the members that finished (succeeded or cached); a member
that fails for good takes its not-yet-started descendants to skipped, and nothing else;
so does a member whose condition is false (`engine.conditions`), without failing the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from orchestrator.artifacts.store import ArtifactRef
from orchestrator.engine.conditions import by_condition
from orchestrator.engine.report import StepReport
from orchestrator.model.graph import Graph
from orchestrator.model.step import Node, OutputList
from orchestrator.state import RunStatus, StepState

_DONE = (StepState.SUCCEEDED, StepState.CACHED)


def bound_refs(node: Node, outputs: dict[str, list[ArtifactRef]]) -> dict[str, ArtifactRef]:
    """The artifact each input argument of `node` reads, from its parents' `outputs`: a
    list ref for a list of outputs."""
    out = {}
    for arg, value in node.inputs().items():
        if isinstance(value, OutputList):
            refs = [outputs[o.node][o.index] for o in value.items]
            out[arg] = ArtifactRef.collect(refs, as_tuple=value.as_tuple)
        else:
            out[arg] = outputs[value.node][value.index]
    return out


@dataclasses.dataclass
class MapState:
    """The children of one expanded mapped step and how far they are."""

    children: list[str]
    parts: Any  # the mapped step's KeyParts
    started: float
    left: int = 0
    failed: list[str] = dataclasses.field(default_factory=list)
    running: int = 0
    max_parallel: int | None = None
    groups: list[list[str]] | None = None  # a map of maps: the children of each element

    def has_room(self) -> bool:
        return self.max_parallel is None or self.running < self.max_parallel


class RunState:
    def __init__(self, graph: Graph, members: Iterable[str] | None = None) -> None:
        self.graph = graph
        keep = set(graph.order if members is None else members)
        self.order = [n for n in graph.order if n in keep]
        dag = graph.dag
        self.children = {n: [c for c in dag.successors(n) if c in keep] for n in self.order}
        self.parents = {n: list(dag.predecessors(n)) for n in self.order}
        self.waiting = {n: len(self.parents[n]) for n in self.order}
        self.consumers = {n: len(self.children[n]) for n in self.order}
        self.outputs: dict[str, list[ArtifactRef]] = {}
        self.reports: dict[str, StepReport] = {}
        self.queue: list[str] = [n for n in self.order if self.waiting[n] == 0]
        self.parent_map: dict[str, str] = {}  # child -> its mapped step
        self.elements: dict[str, dict[str, ArtifactRef]] = {}  # child -> mapped inputs
        self.maps: dict[str, MapState] = {}
        self.fixed: dict[str, dict[str, ArtifactRef]] = {}  # mapped step -> its bound refs

    def node(self, name: str) -> Node:
        """The graph node of a step, or of the mapped step a child belongs to."""
        return self.graph.nodes[self.parent_map.get(name, name)]

    def inputs(self, name: str) -> dict[str, ArtifactRef]:
        """The artifact each input argument of `name` is bound to (its parents finished):
        a list ref for a list of outputs, an element's artifact for a child's mapped one
        (the children of one mapped step share the refs of its other inputs)."""
        mapped = self.parent_map.get(name)
        if mapped is None:
            return bound_refs(self.graph.nodes[name], self.outputs)
        fixed = self.fixed.get(mapped)
        if fixed is None:
            fixed = self.fixed[mapped] = bound_refs(self.graph.nodes[mapped], self.outputs)
        return fixed | self.elements[name]

    def expand(self, name: str, children: dict[str, dict[str, ArtifactRef]], ms: MapState) -> None:
        """Add the children of mapped step `name` (with their mapped inputs), queued."""
        ms.children, ms.left = list(children), len(children)  # keeps ms.groups
        self.maps[name] = ms
        for child, elements in children.items():
            self.parent_map[child] = name
            self.elements[child] = elements
        at = self.order.index(name) + 1
        self.order[at:at] = ms.children
        self.queue.extend(reversed(ms.children))  # popped from the end: element order

    def report(self, name: str, state: str, **fields: object) -> StepReport:
        """A new report for `name` in `state` (it replaces any earlier one)."""
        kind = self.node(name).step.kind
        rep = StepReport(name, kind, state, **fields)  # type: ignore[arg-type]
        self.reports[name] = rep
        return rep

    def finish(self, name: str, refs: list[ArtifactRef]) -> list[str]:
        """Mark `name` finished with `refs`; queue the children it makes ready. Returns the
        parents whose every child in this run has now finished (their values may go)."""
        self.outputs[name] = refs
        if name in self.parent_map:
            return []
        spent = []
        for parent in self.parents[name]:
            self.consumers[parent] -= 1
            if self.consumers[parent] == 0:
                spent.append(parent)
        for child in self.children[name]:
            self.waiting[child] -= 1
            if self.waiting[child] == 0:
                self.queue.append(child)
        return spent

    def to_skip(self, name: str) -> list[str]:
        """The descendants of failed `name` in this run that have not started yet (none for
        a child: its mapped step fails once every child is done)."""
        if name in self.parent_map:
            return []
        members = self.waiting
        out = []
        for desc in self.graph.descendants(name):
            if desc not in members:
                continue
            rep = self.reports.get(desc)
            if rep is not None and rep.state != StepState.PENDING:
                continue
            out.append(desc)
        return out

    def skip(self, name: str, cause: str, reason: dict[str, Any] | None = None) -> StepReport:
        """Skip `name` (never ready): `cause` failed, unless `reason` says otherwise."""
        self.waiting[name] = -1  # never becomes ready
        reason = reason or {"cache": "skipped", "summary": f"upstream step '{cause}' failed"}
        return self.report(name, StepState.SKIPPED, reason=reason)

    def status(self) -> RunStatus:
        """SUCCEEDED when every step finished or was skipped by a condition."""
        ok = all(r.state in _DONE or by_condition(r.reason) for r in self.reports.values())
        return RunStatus.SUCCEEDED if ok else RunStatus.FAILED

    def steps(self) -> list[StepReport]:
        return [self.reports[n] for n in self.order if n in self.reports]
