"""The run engine: walk a validated graph, reuse cached steps, run the rest on executors.

The parts, each in its own module: `RunState` (state.py) keeps which steps are waiting,
ready, finished or skipped; `CacheResolver` (resolver.py) finds a stored result to reuse
or explains the miss; `Recorder` (recorder.py) turns each state change into the rows of
one batch; `InFlight` (inflight.py) holds running attempts, deadlines and retry timers;
`route` (routing.py) picks the executor of each step; `plan` (selection.py) cuts a
partial run; `Mapper` (mapping.py) expands a mapped step into its children. This module
is the loop that drives them.

The one loop: resolve ready steps (cache hit -> finished at once, children released in
the same pass; miss -> to submit), start what may start, wait for the next completion,
deadline or retry, handle it, repeat. Steps that become ready together (a mapped step's
children, the branches of a fan) have their keys made and their cache entries read
ahead at once (`read_ahead`): one read for all of them, not one each.

State changes are committed in groups (the `Recorder`'s batch): before a step starts
whose parent finished in the batch (a step never runs ahead of the record of its
inputs), when the oldest uncommitted change is `COMMIT_WINDOW` seconds old, and
whenever the loop would wait idle. So a quick step's start and end are one row each,
and many steps share one commit.

A step that fails for good marks its descendants skipped; independent branches go on.
A ready step whose condition is false is skipped with its descendants, and the
run may still succeed (`conditions.py`). A failed attempt with retries left waits
`retry_backoff * 2**(n-1)` seconds. A cancel request (cancel.py) ends the loop: running
attempts are killed and the run is recorded `cancelled`.

A step is recorded finished only after its artifacts are written, and starts only after
the steps whose outputs it reads are committed (on PostgreSQL: sent ahead of its own
record, which commits only after them, store/pgsent.py; a step handed to another
process waits until they are committed, `settle`). One exception: a step whose outputs
were hashed ahead of their write (frames, tables: `Early`) releases its in-process
children at once (`release_early`); they run on the values while the write goes on,
and one that ends first is `parked` until the parent is recorded, then recorded in the
same batch or a later one (a cache hit on the value is parked with its release); if the
write fails, every step below it is skipped, those that started when their attempt
ends (`doomed`). So a crash (even SIGKILL) loses no step a later one depended on, and at
most the last `COMMIT_WINDOW` of other changes: running the pipeline again finds the
finished steps in the cache, and `resume` reuses
them even for steps with `cache=False`. A step that runs longer than `COMMIT_WINDOW`
shows as running. Values of in-process steps stay in `memo` (by artifact hash) until
every child has finished (`hold`, `let_go`: a value held twice, as an output and as an
element, stays until both are done), so thread and sequential runs pass outputs without
reloading them.

In a partial run, steps upstream of the selection are cache-only: a hit is reused, a
miss fails the step with the command to run first. When every step upstream of such a
step is cache-only too, the miss is found before the run is recorded and raised as
`NeverComputed`.
"""

from __future__ import annotations

import collections
import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

from orchestrator.artifacts.store import ArtifactRef, ArtifactStore
from orchestrator.cache.hashing import canonical
from orchestrator.cache.keys import KeyMaker, KeyParts
from orchestrator.engine import conditions
from orchestrator.engine.cancel import CancelWatch
from orchestrator.engine.heap import frozen_heap
from orchestrator.engine.inflight import Attempt, InFlight, Retry
from orchestrator.engine.mapping import Mapper
from orchestrator.engine.overseer import Overseer, may_run_here
from orchestrator.engine.preflight import Hit, preflight
from orchestrator.engine.recorder import Recorder
from orchestrator.engine.report import RunResult, StepReport
from orchestrator.engine.resolver import CacheResolver, Entry, Reason, entry_refs
from orchestrator.engine.routing import Placement, placement_of, route
from orchestrator.engine.selection import Plan, Selection, never_computed, plan
from orchestrator.engine.state import RunState
from orchestrator.errors import OrchestratorError
from orchestrator.execution.local import Early, Executor
from orchestrator.execution.worker import StepInvocation, StepResult
from orchestrator.model.graph import Graph
from orchestrator.model.step import Node
from orchestrator.state import RunStatus, StepState
from orchestrator.store.metadata import MetadataStore

__all__ = ["Engine", "RunResult", "StepReport", "new_run_id"]

Listener = Callable[[str, str, dict[str, Any]], None]

COMMIT_WINDOW = 0.005
"""Seconds a state change may wait for others to share its commit (see the docstring)."""


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class Engine:
    """Runs graphs. Composed by a front end with a store, an artifact store and executors."""

    def __init__(
        self,
        store: MetadataStore,
        artifacts: ArtifactStore,
        executors: Callable[[str], Executor],
        listener: Listener | None = None,
        logger: Any = None,
    ) -> None:
        self.store, self.artifacts = store, artifacts
        self._executor_factory = executors
        self._executors: dict[str, Executor] = {}
        self.listener = listener
        self.log = logger
        self.keys = KeyMaker()

    def executor(self, name: str) -> Executor:
        if name not in self._executors:
            self._executors[name] = self._executor_factory(name)
        return self._executors[name]

    def close(self) -> None:
        for ex in self._executors.values():
            ex.shutdown()
        self._executors.clear()

    def run(
        self,
        graph: Graph,
        *,
        target: str,
        executor: str = "thread",
        run_id: str | None = None,
        resumed_from: str | None = None,
        trigger: dict[str, Any] | None = None,
        selection: Selection | None = None,
    ) -> RunResult:
        """Run `graph` (or the part `selection` picks) and return what happened."""
        with frozen_heap():  # collections walk only the run's own objects (heap.py)
            return self._run(graph, target, executor, run_id, resumed_from, trigger, selection)

    def _run(
        self,
        graph: Graph,
        target: str,
        executor: str,
        run_id: str | None,
        resumed_from: str | None,
        trigger: dict[str, Any] | None,
        selection: Selection | None,
    ) -> RunResult:
        selection = selection or Selection()
        cut = plan(graph, selection)
        run = _Run(self, graph, run_id or new_run_id(), executor, resumed_from, cut, target)
        # a missing cached output is an error before the run is recorded
        hits = preflight(graph, cut, self.keys, run.resolver, target)
        if selection:
            trigger = {"kind": "manual", **(trigger or {}), "selection": selection.to_json()}
        self.store.create_run(
            run.run_id,
            graph.pipeline,
            target,
            canonical(graph.params),
            executor,
            resumed_from,
            trigger,
            fresh=run_id is None,
        )
        return run.execute(hits)


@dataclasses.dataclass
class Parked:
    """A step's end (or cache hit) whose record waits for a parent's (`release_early`)."""

    name: str
    attempt: Attempt | None = None
    result: StepResult | None = None
    record: Callable[[], None] | None = None  # a cache hit's record


class _Run:
    """One run of one graph: the loop over the parts (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        graph: Graph,
        run_id: str,
        executor: str,
        resumed_from: str | None,
        cut: Plan,
        target: str,
    ) -> None:
        self.e, self.g, self.run_id, self.target = engine, graph, run_id, target
        self.voice = _Voice(engine.listener, engine.log, run_id, graph.pipeline)
        self.emit, self.warn, self.info = self.voice.emit, self.voice.warn, self.voice.info
        self.cache_only = cut.cache_only
        self.state = RunState(graph, cut.members)
        self.resolver = CacheResolver(
            engine.store, engine.artifacts, graph.pipeline, resumed_from, self.warn, graph.order
        )
        self.record = Recorder(
            engine.store, run_id, graph.pipeline, {n: graph.output_names(n) for n in graph.order}
        )
        self.flight = InFlight()
        self.cancel = CancelWatch(engine.store, run_id)
        self.overseer = Overseer(self.record, self.cancel)
        self.executor = executor
        self._placement: Placement | None = None
        self.to_submit: collections.deque[Retry] = collections.deque()
        self.keys: dict[str, KeyParts] = {}  # keys made ahead of their step's turn
        self.ahead_seen: set[str] = set()  # steps `read_ahead` has looked at
        self.hits: dict[str, Hit] = {}
        self.memo: dict[str, Any] = {}
        self.held: collections.Counter[str] = collections.Counter()  # memo hash -> holders
        self.maps = Mapper(self)
        self._routes: dict[int, Executor] = {}
        # released ahead of their write (`release_early`): not recorded finished yet
        self.unrecorded: set[str] = set()
        self.parked: list[Parked] = []  # ended or hit while an input is unrecorded
        self.doomed: dict[str, str] = {}  # started on an input whose write failed -> it
        self.prewarmed: set[str] = set()  # steps whose executors were told (`prewarm`)

    @property
    def placement(self) -> Placement:
        """Read from the run's executor when a step first starts (a cached run makes none)."""
        if self._placement is None:
            self._placement = placement_of(self.executor, self.e.executor(self.executor))
        return self._placement

    # -- the loop ---------------------------------------------------------------------------
    def execute(self, hits: dict[str, Hit]) -> RunResult:
        t0 = time.perf_counter()
        self.hits = hits
        status = RunStatus.FAILED
        self.info("run started", steps=len(self.state.order), executor=self.executor)
        try:
            while self.state.queue or self.to_submit or self.flight:
                if self.cancel.requested():
                    break
                self.resolve_ready(hits)
                self.submit()
                if self.flight and not self.cancel.seen:  # seen: by the minder, see stop
                    self.wait()
            self.record.flush()
            status = self.stop() if self.cancel.seen else self.state.status()
        except BaseException:
            status = RunStatus.INTERRUPTED
            self.record.flush()
            raise
        finally:
            self.overseer.close()
            self.e.store.finish_run(self.run_id, status)
            self.flight.cancel()
            took = round(time.perf_counter() - t0, 4)
            self.info("run finished", status=str(status), duration=took)
        took = time.perf_counter() - t0
        return RunResult(self.run_id, self.g.pipeline, status, self.state.steps(), took)

    def stop(self) -> RunStatus:
        """Cancelled: kill what runs; `finish_run` records those step runs interrupted."""
        parked, self.parked = [p.name for p in self.parked], []  # never recorded
        for name in self.flight.kill_all() + parked:
            self.state.reports[name].state = StepState.INTERRUPTED
            self.emit(name, StepState.INTERRUPTED, cause="cancelled")
        self.info("run cancelled")
        return RunStatus.CANCELLED

    def resolve_ready(self, hits: dict[str, Hit]) -> None:
        """Cache hits finish at once (their children join the queue); misses wait to start."""
        state = self.state
        while state.queue:
            name = state.queue.pop()
            if state.waiting.get(name) == -1:  # skipped after it was released early
                continue
            if name in hits:
                self.finish_cached(name, *hits.pop(name))
                continue
            node = state.node(name)
            if node.condition is not None and name not in state.parent_map and self.gate(name):
                continue
            if node.mapped and name not in state.parent_map:
                self.maps.expand(name)
                continue
            parts = self.keys.pop(name, None)
            if parts is None and state.queue:
                self.read_ahead(name)
                parts = self.keys.pop(name, None)
            if parts is None:
                inputs = {a: r.hash for a, r in state.inputs(name).items()}
                try:
                    parts = self.e.keys.make(node, inputs)
                except OrchestratorError as exc:
                    self.finish_failed(name, None, str(exc))
                    continue
            cache_only = name in self.cache_only
            hit, reason = self.resolver.lookup(name, node.step, parts, cache_only=cache_only)
            if hit is not None:
                self.finish_cached(name, parts, hit, reason)
            elif cache_only:
                state.report(name, StepState.PENDING, cache_key=parts.key, reason=reason)
                self.finish_failed(name, parts, never_computed([name], self.target))
            else:
                self.to_submit.append((name, parts, 1))
                state.report(name, StepState.PENDING, cache_key=parts.key, reason=reason)
                self.prewarm(name)

    def prewarm(self, name: str) -> None:
        """A miss: tell each executor which steps it will likely run soon, this one and
        (a top-level step) the ones downstream of it, each step once a run. A step told
        already had its descendants told with it: nothing is left to look at."""
        if name in self.prewarmed:
            return
        names = {name} if name in self.state.parent_map else {name, *self.g.descendants(name)}
        by_executor: dict[int, tuple[Executor, list[Any]]] = {}
        for n in sorted(names - self.prewarmed):
            node = self.state.node(n) if n == name else self.g.nodes[n]
            ex = self.route(node)
            by_executor.setdefault(id(ex), (ex, []))[1].append(node.step)
        self.prewarmed |= names
        for ex, steps in by_executor.values():
            ex.prewarm(steps, self.run_id)

    def read_ahead(self, name: str) -> None:
        """`name` and the steps queued since the last read ahead are ready at once: make
        their keys (a step's children together, `KeyMaker.make_many`) and read what their
        lookups need in one go (`CacheResolver.read_ahead`). A step whose key cannot be
        made here is left to `resolve_ready`, which reports why."""
        state, hits = self.state, self.hits
        fresh = [name]
        for other in reversed(state.queue):  # the newest are at the end
            if other in self.ahead_seen:
                break
            fresh.append(other)
        self.ahead_seen.update(fresh)
        groups: dict[str, list[str]] = {}
        for n in fresh:
            node, child = state.node(n), n in state.parent_map
            if (
                n in hits
                or (node.condition is not None and not child)
                or (node.mapped and not child)
            ):
                continue
            groups.setdefault(state.parent_map.get(n, n), []).append(n)
        if sum(len(g) for g in groups.values()) < 2:
            return
        wanted = []
        for owner, names in groups.items():
            node = self.g.nodes[owner]
            inputs = [{a: r.hash for a, r in state.inputs(n).items()} for n in names]
            try:
                made = self.e.keys.make_many(node, inputs)
            except OrchestratorError:
                continue
            for n, parts in zip(names, made, strict=True):
                self.keys[n] = parts
                if n not in self.cache_only:
                    wanted.append((n, node.step, parts))
        self.resolver.read_ahead(wanted)

    def gate(self, name: str) -> bool:
        """Whether ready `name` stops at its condition: false (skipped with its descendants,
        see `engine.conditions`) or unreadable (failed)."""
        node, state = self.g.nodes[name], self.state
        try:
            reason = conditions.verdict(node, state.outputs, self.memo, self.e.artifacts.get)
        except OrchestratorError as exc:
            self.finish_failed(name, None, str(exc))
            return True
        if reason is None:
            return False
        self.record.skipped(state.skip(name, name, reason), name)
        self.emit(name, StepState.SKIPPED, reason=reason["summary"])
        for desc in state.to_skip(name):
            self.record.skipped(state.skip(desc, name, conditions.downstream(name)), name)
            self.emit(desc, StepState.SKIPPED, cause=name)
        return True

    def submit(self) -> None:
        """Start what may start, each once the steps it reads are recorded finished
        (`commit_inputs`); their `running` rows join the batch (see `wait`)."""
        waiting, keep, starting = self.to_submit, [], []
        full: set[int] = set()
        for _ in range(len(waiting)):
            if full and len(full) == len(self.e._executors):  # none has room: stop looking
                break
            retry = waiting.popleft()
            name = retry[0]
            if self.state.waiting.get(name) == -1:  # skipped after it was released early
                continue
            child = name in self.state.parent_map
            ex = self.route(self.state.node(name))
            if not self.flight.has_room(ex):
                full.add(id(ex))
                keep.append(retry)
                continue
            if child and not self.maps.may_start(name):
                keep.append(retry)
                continue
            self.flight.reserve(ex)
            if child:
                self.maps.started(name, store=not ex.in_process)
            starting.append((retry, ex))
        waiting.extendleft(reversed(keep))  # in their order, before the rest
        here = self.alone(starting)
        if here:  # its batch commits first: the minder's visit then holds one row
            self.record.flush()
        else:
            self.commit_inputs([retry[0] for retry, _ in starting])
        if any(not ex.in_process for _, ex in starting):
            self.e.store.settle()  # a step in another process reads what was sent, committed
        for retry, ex in starting:
            inv = self.prepare(*retry)
            name, parts, attempt = retry
            step = self.state.node(name).step
            t = time.perf_counter()
            memo = self.memo if ex.in_process else None
            fut = self.overseer.run(ex, inv, step, memo) if here else ex.submit(inv, step, memo)
            deadline = t + step.timeout if step.timeout else None
            self.flight.add(fut, Attempt(name, attempt, parts, t, deadline, ex, step.timeout))

    def alone(self, starting: list[tuple[Retry, Executor]]) -> bool:
        """Whether the one step starting may run in this thread (`engine.overseer`):
        nothing else runs, writes, waits for a retry, is ready or waits to start."""
        if len(starting) != 1 or self.flight or self.to_submit or self.state.queue:
            return False
        (name, _, _), ex = starting[0]
        return may_run_here(ex, self.state.node(name).step)

    def commit_inputs(self, names: list[str]) -> None:
        """Commit the batch before `names` start when one of their parents finished in
        it (a step never runs ahead of the record of its inputs), or when it is due."""
        done, state = self.record.finished, self.state
        if done and any(
            p in done for n in names for p in state.parents[state.parent_map.get(n, n)]
        ):
            self.record.flush()
            return
        left = self.record.due(COMMIT_WINDOW)
        if left is not None and left <= 0:
            self.record.flush()

    def route(self, node: Node) -> Executor:
        """The executor of a step (children of a mapped step share their step's)."""
        ex = self._routes.get(id(node))
        if ex is None:
            ex = self._routes[id(node)] = self.e.executor(route(node.step, self.placement))
        return ex

    def prepare(self, name: str, parts: KeyParts, attempt: int) -> StepInvocation:
        """Record a step as running (in the round's batch); return its invocation."""
        inputs = self.state.inputs(name)
        rep = self.state.reports[name]
        rep.state, rep.attempts = StepState.RUNNING, attempt
        self.record.running(rep, parts, inputs, attempt)
        self.emit(name, StepState.RUNNING, attempt=attempt)
        node = self.state.node(name)
        return _invocation(self.run_id, self.g, node, name, parts, attempt, inputs)

    def wait(self) -> None:
        """Handle what ends next. Uncommitted changes wait at most until they are due;
        if nothing ended by then they are committed, then the loop waits on. A step
        whose computation ended while its outputs are written in the background frees
        its slot: the loop goes back to start what may start."""
        left = self.record.due(COMMIT_WINDOW)
        if left is not None:
            writing = len(self.flight.writing)
            ended = self.flight.wait(max(0.0, min(left, self.cancel.poll)))
            if not ended and len(self.flight.writing) == writing:
                self.record.flush()
                ended = self.flight.wait(self.cancel.poll)
        else:
            ended = self.flight.wait(self.cancel.poll)
        for attempt, early in self.flight.take_early():
            self.release_early(attempt, early)
        for attempt, result in ended:
            self.handle(attempt, result)
        self.to_submit.extend(self.flight.due())

    def handle(self, attempt: Attempt, result: StepResult) -> None:
        name = attempt.name
        if name in self.doomed:
            self.finish_doomed(attempt, result)
            return
        if result.ok and self.awaits_record(name):
            self.parked.append(Parked(name, attempt, result))  # handled once they are
            return
        if not result.ok and name in self.unrecorded:
            self.fail_released(attempt, result)
            return
        step = self.state.node(name).step
        if name in self.state.parent_map:
            self.maps.started(name, -1)
        if result.ok:
            self.finish_succeeded(attempt, result)
            return
        if attempt.attempt <= step.retries:
            delay = step.retry_backoff * (2 ** (attempt.attempt - 1))
            self.state.reports[name].error = result.error
            took = time.perf_counter() - attempt.started
            self.record.retrying(name, attempt.attempt, result, took)
            self.emit(name, "retrying", attempt=attempt.attempt, delay=delay, error=result.error)
            self.warn(
                name, f"attempt {attempt.attempt} failed: {result.error}; retrying in {delay:g}s"
            )
            self.flight.retry_later(delay, (name, attempt.parts, attempt.attempt + 1))
            return
        took = time.perf_counter() - attempt.started
        self.finish_failed(
            name,
            attempt.parts,
            result.error or "failed",
            result=result,
            attempts=attempt.attempt,
            duration=took,
            timed_out=attempt.timed_out,
        )

    # -- finishing --------------------------------------------------------------------------
    def release(self, name: str, refs: list[ArtifactRef]) -> None:
        for parent in self.state.finish(name, refs):
            for r in self.state.outputs.get(parent, []):
                for f in r.files():
                    self.let_go(f.hash)
        if name in self.state.parent_map:
            self.maps.done(name)

    def hold(self, hash_: str, value: Any) -> None:
        """Keep `value` in `memo` for one more holder: a step's output until its children
        finished, a mapped step's element until its children did. (One content may be
        both: a child that returns its element.)"""
        self.memo[hash_] = value
        self.held[hash_] += 1

    def let_go(self, hash_: str) -> None:
        """One holder of a value in `memo` is done with it; the last one drops it."""
        left = self.held[hash_] - 1
        if left > 0:
            self.held[hash_] = left
            return
        self.held.pop(hash_, None)
        self.memo.pop(hash_, None)

    def finish_cached(self, name: str, parts: KeyParts, entry: Entry, reason: Reason) -> None:
        refs = list(entry_refs(entry))  # the report's own list
        rep = self.state.report(
            name, StepState.CACHED, cache_key=parts.key, reason=reason, outputs=refs
        )

        def record() -> None:
            self.record.cached(rep, parts, entry["outputs"])
            self.emit(name, StepState.CACHED, cache_key=parts.key)
            self.release(name, refs)

        if self.awaits_record(name):  # a hit on a value still being written: it and its
            self.parked.append(Parked(name, record=record))  # children wait for the record
        else:
            record()

    def finish_succeeded(self, attempt: Attempt, result: StepResult) -> None:
        self.finish_ok(attempt.name, attempt.parts, attempt.attempt, result)

    def finish_ok(self, name: str, parts: KeyParts, attempt: int, result: StepResult) -> None:
        rep = self.state.reports[name]
        rep.state, rep.duration, rep.outputs = StepState.SUCCEEDED, result.duration, result.outputs
        rep.error = None
        self.resolver.remember(self.record.succeeded(rep, parts, attempt, result))
        if name in self.unrecorded:  # its children had its values already
            self.unrecorded.discard(name)
            self.emit(name, StepState.SUCCEEDED, duration=result.duration)
            self.unpark()
            return
        if result.values is not None:
            for ref, value in zip(result.outputs, result.values, strict=True):
                self.hold(ref.hash, value)
        self.emit(name, StepState.SUCCEEDED, duration=result.duration)
        self.release(name, result.outputs)

    # -- children started ahead of their inputs' write -------------------------------------
    def release_early(self, attempt: Attempt, early: Early) -> None:
        """A step computed, its outputs hashed ahead of their write: its children may start
        on the values now, if each runs in this process (`may_release_early`). The step is
        recorded finished when its write ends, and a child that ends before then is
        recorded after it (`parked`), so no step is recorded finished on an input that is
        not: a crash loses both or neither."""
        name = attempt.name
        if name in self.doomed or not self.may_release_early(name):
            return
        for ref, value in zip(early.refs, early.values, strict=True):
            self.hold(ref.hash, value)
        self.unrecorded.add(name)
        self.release(name, early.refs)

    def may_release_early(self, name: str) -> bool:
        """Not a mapped step or one of its children, no retries or timeout (its result is
        final once computed), and every child a plain step of an in-process executor
        (it reads the values from memory, never the file being written)."""
        state = self.state
        if name in state.parent_map:
            return False
        node = state.node(name)
        if node.mapped or node.step.retries or node.step.timeout is not None:
            return False
        for child in state.children[name]:
            c = self.g.nodes[child]
            if c.mapped or c.condition is not None or not self.route(c).in_process:
                return False
        return True

    def awaits_record(self, name: str) -> bool:
        """Whether a parent of `name` is released but not recorded finished yet."""
        if not self.unrecorded:
            return False
        state = self.state
        return any(p in self.unrecorded for p in state.parents[state.parent_map.get(name, name)])

    def unpark(self) -> None:
        """Handle the parked ends whose inputs are all recorded now, in the order they came."""
        while True:
            ready = [p for p in self.parked if not self.awaits_record(p.name)]
            if not ready:
                return
            self.parked = [p for p in self.parked if self.awaits_record(p.name)]
            for p in ready:
                if p.attempt is not None and p.result is not None:
                    self.handle(p.attempt, p.result)
                elif p.record is not None:
                    p.record()

    def fail_released(self, attempt: Attempt, result: StepResult) -> None:
        """A released step's write failed: it fails, and no descendant is recorded
        finished. Those that started on its values are skipped when their attempt ends (at
        once if it has, or if it waits for a retry), a hit parked behind it at once, and
        the rest as a failure's descendants are."""
        name = attempt.name
        self.unrecorded.discard(name)
        below = set(self.g.descendants(name))
        for d in below:
            rep = self.state.reports.get(d)
            if rep is not None and rep.state == StepState.RUNNING:
                self.doomed[d] = name
        took = time.perf_counter() - attempt.started
        error = result.error or "its outputs could not be stored"
        self.finish_failed(
            name, attempt.parts, error, result=result, attempts=attempt.attempt, duration=took
        )
        parked = [p for p in self.parked if p.name in below]
        self.parked = [p for p in self.parked if p.name not in below]
        for p in parked:
            if p.attempt is not None and p.result is not None:
                self.finish_doomed(p.attempt, p.result)
            else:  # a cache hit, never recorded: skipped as if it had not been looked up
                self.record.skipped(self.state.skip(p.name, name), name)
                self.emit(p.name, StepState.SKIPPED, cause=name)
        waiting = self.flight.drop_retries(set(self.doomed))
        waiting += [r for r in self.to_submit if r[0] in self.doomed]
        for retry in waiting:
            if retry in self.to_submit:
                self.to_submit.remove(retry)
            self.abandon(*retry, ended=True)

    def finish_doomed(self, attempt: Attempt, result: StepResult) -> None:
        took = time.perf_counter() - attempt.started
        self.abandon(attempt.name, attempt.parts, attempt.attempt + 1, took)

    def abandon(
        self, name: str, parts: KeyParts, next_attempt: int, took: float = 0.0, ended: bool = False
    ) -> None:
        """Skip doomed `name`, whose last attempt was `next_attempt - 1`: its row says so,
        and so does that attempt, unless it had `ended` (failed, a retry waiting)."""
        cause = self.doomed.pop(name)
        self.unrecorded.discard(name)
        rep = self.state.skip(name, cause)
        rep.attempts, rep.duration = next_attempt - 1, took
        self.record.abandoned(rep, parts, next_attempt - 1, cause, end_attempt=not ended)
        self.emit(name, StepState.SKIPPED, cause=cause)

    def finish_failed(
        self,
        name: str,
        parts: KeyParts | None,
        error: str,
        *,
        result: StepResult | None = None,
        attempts: int = 0,
        duration: float = 0.0,
        timed_out: bool = False,
    ) -> None:
        self.voice.failed(name, error)
        rep = self.state.reports.get(name) or self.state.report(name, StepState.FAILED)
        rep.state, rep.error, rep.timed_out = StepState.FAILED, error, timed_out
        rep.attempts, rep.duration = attempts, duration
        tb = f"\n{result.traceback}" if result is not None and result.traceback else ""
        self.record.failed(rep, parts, result.log if result else None, tb)
        if result is not None:  # what the last attempt tracked before it failed
            self.record.tracking(name, result)
        self.emit(name, StepState.FAILED, error=error)
        for desc in self.state.to_skip(name):
            self.record.skipped(self.state.skip(desc, name), name)
            self.emit(desc, StepState.SKIPPED, cause=name)
        if name in self.state.parent_map:
            self.maps.done(name)


class _Voice:
    """What a run tells its listener (progress) and its logger."""

    def __init__(self, listener: Listener | None, log: Any, run_id: str, pipeline: str) -> None:
        self.listener, self.log, self.run_id, self.pipeline = listener, log, run_id, pipeline

    def emit(self, name: str, state: str, **info: Any) -> None:
        if self.listener is not None:
            self.listener(name, state, info)

    def warn(self, name: str, msg: str) -> None:
        if self.log is not None:
            self.log.warning(msg, run_id=self.run_id, step=name)

    def info(self, event: str, **kw: Any) -> None:
        if self.log is not None:
            self.log.info(event, run_id=self.run_id, pipeline=self.pipeline, **kw)

    def failed(self, name: str, error: str) -> None:
        if self.log is not None:
            first = error.splitlines()[0] if error else ""
            self.log.error("step failed", run_id=self.run_id, step=name, error=first)


def _invocation(
    run_id: str,
    graph: Graph,
    node: Node,
    name: str,
    parts: KeyParts,
    attempt: int,
    inputs: dict[str, ArtifactRef],
) -> StepInvocation:
    return StepInvocation(
        run_id=run_id,
        pipeline=graph.pipeline,
        step=name,
        step_ref=node.step.ref,
        inputs=inputs,
        params=node.params(),
        cache_key=parts.key,
        attempt=attempt,
        pipeline_params=graph.params,
        serializer=node.step.hints.get("serializer"),
    )
