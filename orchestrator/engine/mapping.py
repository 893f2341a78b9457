"""Mapped steps at run time: expand a ready mapped step into one child per element.

When a mapped step is ready, its key is made from its inputs as for any step (the
mapped inputs are the whole lists, by content), so an unchanged list is one cache hit
for the whole map. On a miss the lists are read (from this process's memory, else the
artifact store), each element is encoded as its own artifact (inline when small, else
stored only when a child that reads it starts in another process, see
`store_elements`) and one child per element joins the run,
`train[0]`, `train[1]`, ...: each has its own key from its element's content hash, its
own attempts, retries, log and row. Several mapped inputs are zipped and must have equal
lengths; a mapped input that is already a list of artifacts (the output of another
mapped step) is used as it is, without a read.

When the last child is done, the mapped step finishes: succeeded, with one list ref per
output (the children's outputs in element order; `[]` for an empty list), recorded as a
cache entry; or failed, naming the children that failed, once every other child has
finished. Its reason says how many children ran and which.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any

from orchestrator.artifacts.store import ArtifactRef
from orchestrator.engine.state import MapState
from orchestrator.errors import ArtifactError, OrchestratorError
from orchestrator.execution.worker import StepResult
from orchestrator.state import StepState

if TYPE_CHECKING:
    from orchestrator.engine.loop import _Run


class Mapper:
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.unwritten: dict[str, bytes] = {}  # element hash -> its bytes, not yet stored
        self.groups: list[list[str]] | None = None  # set by `_children` for a map of maps
        self.uses: collections.Counter[str] = collections.Counter()  # element -> children
        self.holding: set[str] = set()  # elements this mapper holds in the run's memo

    def expand(self, name: str) -> None:
        """Resolve mapped step `name`: a cache hit for the whole map, or its children."""
        run, state = self.run, self.run.state
        node = state.node(name)
        refs = state.inputs(name)
        try:
            parts = run.e.keys.make(node, {a: r.hash for a, r in refs.items()})
        except OrchestratorError as exc:
            run.finish_failed(name, None, str(exc))
            return
        cache_only = name in run.cache_only
        hit, reason = run.resolver.lookup(name, node.step, parts, cache_only=cache_only)
        if hit is not None:
            run.finish_cached(name, parts, hit, reason)
            return
        try:
            children = self._children(name, {a: refs[a] for a in node.mapped})
        except OrchestratorError as exc:
            state.report(name, StepState.PENDING, cache_key=parts.key, reason=reason)
            run.finish_failed(name, parts, str(exc))
            return
        ms = MapState([], parts, time.perf_counter(), max_parallel=node.max_parallel)
        ms.groups, self.groups = self.groups, None
        for elements in children.values():
            for ref in elements.values():
                self.uses[ref.hash] += 1
        state.expand(name, children, ms)
        rep = state.report(name, StepState.RUNNING, cache_key=parts.key, reason=reason)
        rep.attempts = 1
        run.record.running(rep, parts, refs, 1)
        run.record.names.update(dict.fromkeys(children, run.record.names.get(name, [])))
        run.emit(name, StepState.RUNNING, children=len(children))
        if not children:
            self.complete(name)

    def _children(
        self, name: str, lists: dict[str, ArtifactRef], *, nested: bool = False
    ) -> dict[str, dict[str, ArtifactRef]]:
        """`{child name: {mapped argument: element artifact}}`, in element order; for a
        map of maps, `train[i][j]` for element j of element i's own list (`groups`)."""
        if nested:
            elements = {arg: self._elements(name, arg, ref) for arg, ref in lists.items()}
            lengths = {arg: len(e) for arg, e in elements.items()}
            if len(set(lengths.values())) > 1:
                sizes = ", ".join(f"'{a}' has {n}" for a, n in lengths.items())
                raise OrchestratorError(
                    f"step '{name}' maps over inputs of different lengths ({sizes})"
                )
            count = next(iter(lengths.values()), 0)
            return {f"{name}[{j}]": {a: elements[a][j] for a in elements} for j in range(count)}
        elements = {arg: self._elements(name, arg, ref) for arg, ref in lists.items()}
        lengths = {arg: len(e) for arg, e in elements.items()}
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"'{a}' has {n}" for a, n in lengths.items())
            raise OrchestratorError(
                f"step '{name}' maps over inputs of different lengths ({sizes}); mapped "
                "inputs are zipped and must have as many elements each"
            )
        count = next(iter(lengths.values()), 0)
        rows = [{arg: elements[arg][i] for arg in elements} for i in range(count)]
        inner = self.run.state.node(name).inner
        if not inner:
            return {f"{name}[{i}]": row for i, row in enumerate(rows)}
        self.groups = []
        children = {}
        for i, row in enumerate(rows):  # a map of maps: each element's own list, mapped
            sub = self._children(f"{name}[{i}]", {a: row[a] for a in inner}, nested=True)
            self.groups.append(list(sub))
            children.update({c: row | elems for c, elems in sub.items()})
        return children

    def _elements(self, name: str, arg: str, ref: ArtifactRef) -> list[ArtifactRef]:
        if ref.items is not None:
            return list(ref.items)
        run = self.run
        value = run.memo[ref.hash] if ref.hash in run.memo else run.e.artifacts.get(ref)
        if not isinstance(value, list | tuple):
            raise OrchestratorError(
                f"step '{name}' maps over input '{arg}', but the value it got is a "
                f"{type(value).__name__}, not a list"
            )
        serializer = "pickle" if ref.serializer == "pickle" else None
        out = []
        for i, item in enumerate(value):
            try:
                elem, data = run.e.artifacts.encode(item, serializer)
            except ArtifactError as exc:
                raise OrchestratorError(
                    f"step '{name}' input '{arg}' element {i} cannot be stored: {exc}"
                ) from None
            if elem.hash not in self.holding:  # one hold per content, let go in `done`
                self.holding.add(elem.hash)
                run.hold(elem.hash, item)
            elem = run.e.artifacts.inlined(elem, data)
            if elem.data is None:  # an inline element travels with its ref
                self.unwritten[elem.hash] = data
            out.append(elem)
        return out

    def store_elements(self, child: str) -> None:
        """Store the elements a child reads, before it is recorded as running. Only a
        child that runs in another process reads them there: an in-process child gets
        its element from memory, and a cache hit needs none. (An element is no output:
        the list it comes from is stored, and a resumed map encodes it again.)"""
        state, run = self.run.state, self.run
        refs = [r for r in state.elements.get(child, {}).values() if r.hash in self.unwritten]
        for ref in refs:
            run.e.artifacts.write(ref, self.unwritten.pop(ref.hash))
        if refs:
            run.record.elements(state.parent_map[child], refs)

    # -- children --------------------------------------------------------------------------
    def may_start(self, child: str) -> bool:
        """Whether one more child of its mapped step may run now (`max_parallel`)."""
        ms = self.run.state.maps[self.run.state.parent_map[child]]
        return ms.has_room()

    def started(self, child: str, delta: int = 1, *, store: bool = False) -> None:
        """A child starts (`delta` 1; `store` when it runs in another process, which
        reads its elements from the artifact store) or an attempt of it ended (-1)."""
        state = self.run.state
        state.maps[state.parent_map[child]].running += delta
        if store:
            self.store_elements(child)

    def done(self, child: str) -> None:
        """A child finished for good (succeeded, cached or failed)."""
        state = self.run.state
        mapped = state.parent_map[child]
        ms = state.maps[mapped]
        for ref in state.elements.get(child, {}).values():
            self.uses[ref.hash] -= 1
            if self.uses[ref.hash] <= 0:  # no other child reads this element
                del self.uses[ref.hash]
                if ref.hash in self.holding:
                    self.holding.discard(ref.hash)
                    self.run.let_go(ref.hash)
                self.unwritten.pop(ref.hash, None)
        if state.reports[child].state == StepState.FAILED:
            ms.failed.append(child)
        ms.left -= 1
        if ms.left == 0:
            self.complete(mapped)

    def complete(self, name: str) -> None:
        run, state = self.run, self.run.state
        ms = state.maps[name]
        took = time.perf_counter() - ms.started
        if ms.failed:
            first = state.reports[ms.failed[0]].error or "failed"
            shown = ", ".join(ms.failed[:5]) + (", ..." if len(ms.failed) > 5 else "")
            error = (
                f"{len(ms.failed)} of {len(ms.children)} mapped children failed ({shown}); "
                f"{ms.failed[0]}: {first.splitlines()[0] if first else ''}"
            )
            run.finish_failed(name, ms.parts, error, attempts=1, duration=took)
            return
        count = len(state.node(name).step.outputs)
        if ms.groups is None:
            outs = [
                ArtifactRef.collect([state.outputs[c][i] for c in ms.children])
                for i in range(count)
            ]
        else:  # a map of maps: a list (per element) of lists
            outs = [
                ArtifactRef.collect(
                    [ArtifactRef.collect([state.outputs[c][i] for c in g]) for g in ms.groups]
                )
                for i in range(count)
            ]
        rep = state.reports[name]
        rep.reason = self._reason(name, ms)
        result = StepResult(True, outs, None, None, "", took)
        run.finish_ok(name, ms.parts, 1, result)

    def _reason(self, name: str, ms: MapState) -> dict[str, Any]:
        state = self.run.state
        ran = [c for c in ms.children if state.reports[c].state == StepState.SUCCEEDED]
        cached = len(ms.children) - len(ran)
        summary = f"mapped over {len(ms.children)} elements: {len(ran)} ran, {cached} cached"
        if ran and len(ran) <= 10:
            summary += f" (ran: {', '.join(ran)})"
        before = (state.reports[name].reason or {}).get("summary")
        reason: dict[str, Any] = {"cache": "miss", "summary": summary, "children": len(ms.children)}
        if before:
            reason["details"] = [summary, f"the map itself: {before}"]
        return reason
