"""The run engine: walk a validated graph, reuse cached steps, run the rest on executors.

State kept for one run (all in the scheduling thread; nothing else mutates it):

* `waiting[n]`: how many parents of node n have not finished;
* `outputs[n]`: artifact refs of a finished node, which feed its children's keys;
* `queue`: nodes whose parents have finished, not yet resolved;
* `running`: future -> attempt in flight; `timers`: retries waiting for their backoff.

The one loop: resolve ready nodes (cache hit -> finished at once, children released in
the same pass; miss -> submitted), write the round's state changes in one transaction,
wait for the next completion, deadline or retry, handle it, repeat. A node that fails
for good marks its descendants skipped; independent branches go on.

Because each round's changes are committed before the next round starts any step, a
crash (even SIGKILL) loses no finished step: running the pipeline again finds them in
the cache, and `resume` reuses them even for steps with `cache=False`.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import heapq
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from orchestrator.artifacts.store import ArtifactRef, ArtifactStore
from orchestrator.cache.hashing import canonical
from orchestrator.cache.keys import KeyMaker, KeyParts, explain_hit, explain_miss
from orchestrator.errors import OrchestratorError
from orchestrator.execution.local import Executor
from orchestrator.execution.worker import StepInvocation, StepResult
from orchestrator.model.graph import Graph
from orchestrator.state import RunStatus, StepState
from orchestrator.store.metadata import Batch, MetadataStore, now

Listener = Callable[[str, str, dict[str, Any]], None]


@dataclasses.dataclass
class StepReport:
    name: str
    kind: str
    state: str
    duration: float = 0.0
    attempts: int = 0
    cache_key: str | None = None
    reason: dict[str, Any] | None = None
    error: str | None = None
    outputs: list[ArtifactRef] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RunResult:
    run_id: str
    pipeline: str
    status: str
    steps: list[StepReport]
    duration: float

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "duration": round(self.duration, 4),
            "steps": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "state": s.state,
                    "duration": round(s.duration, 4),
                    "attempts": s.attempts,
                    "cache_key": s.cache_key,
                    "reason": (s.reason or {}).get("summary"),
                    "error": s.error,
                    "outputs": [o.to_json() for o in s.outputs],
                }
                for s in self.steps
            ],
        }


@dataclasses.dataclass
class _Attempt:
    name: str
    attempt: int
    parts: KeyParts
    started: float
    deadline: float | None
    executor: Executor


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class Engine:
    """Runs graphs. Composed by the CLI with a store, an artifact store and executors."""

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
    ) -> RunResult:
        run = _Run(self, graph, run_id or new_run_id(), executor, resumed_from)
        self.store.create_run(
            run.run_id,
            graph.pipeline,
            target,
            canonical(graph.params),
            executor,
            resumed_from,
            trigger,
        )
        return run.execute()


class _Run:
    def __init__(
        self, engine: Engine, graph: Graph, run_id: str, executor: str, resumed_from: str | None
    ) -> None:
        self.e, self.g, self.run_id = engine, graph, run_id
        self.default_executor = executor
        self.store, self.artifacts = engine.store, engine.artifacts
        self.batch = Batch()
        self.waiting = {n: len(list(graph.dag.predecessors(n))) for n in graph.order}
        self.consumers = {n: len(list(graph.dag.successors(n))) for n in graph.order}
        self.outputs: dict[str, list[ArtifactRef]] = {}
        self.reports: dict[str, StepReport] = {}
        self.queue: list[str] = [n for n in graph.order if self.waiting[n] == 0]
        self.pending_submit: list[tuple[str, KeyParts, int]] = []
        self.running: dict[cf.Future[StepResult], _Attempt] = {}
        self.timers: list[tuple[float, int, str, KeyParts, int]] = []
        self.memo: dict[str, Any] = {}
        self.index: dict[str, dict[str, Any]] = {}  # entries made during this run
        self.running_on: dict[Executor, int] = defaultdict(int)
        self.resume: dict[str, dict[str, Any]] = {}
        if resumed_from:
            for sr in self.store.step_runs(resumed_from):
                if sr["state"] in (StepState.SUCCEEDED, StepState.CACHED) and sr["outputs"]:
                    self.resume[sr["name"]] = sr

    # -- events -------------------------------------------------------------------------
    def emit(self, name: str, state: str, **info: Any) -> None:
        if self.e.listener is not None:
            self.e.listener(name, state, info)

    # -- main loop ----------------------------------------------------------------------
    def execute(self) -> RunResult:
        t0 = time.perf_counter()
        status = RunStatus.FAILED
        self.log_info("run started", steps=len(self.g.order), executor=self.default_executor)
        try:
            while self.queue or self.pending_submit or self.running or self.timers:
                self.resolve_ready()
                self.submit_pending()  # one commit: finished steps, then the starts
                if self.running or self.timers:
                    self.wait_once()
            self.flush()
            status = (
                RunStatus.SUCCEEDED
                if all(
                    r.state in (StepState.SUCCEEDED, StepState.CACHED)
                    for r in self.reports.values()
                )
                else RunStatus.FAILED
            )
        except BaseException:
            status = RunStatus.INTERRUPTED
            self.flush()
            raise
        finally:
            self.store.finish_run(self.run_id, status)
            for fut in self.running:
                fut.cancel()
            self.log_info(
                "run finished", status=str(status), duration=round(time.perf_counter() - t0, 4)
            )
        steps = [self.reports[n] for n in self.g.order if n in self.reports]
        return RunResult(self.run_id, self.g.pipeline, status, steps, time.perf_counter() - t0)

    def flush(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, Batch()
            self.store.write(batch, fast=True)

    # -- resolving ready nodes ------------------------------------------------------------
    def resolve_ready(self) -> None:
        while self.queue:
            name = self.queue.pop()
            node = self.g.nodes[name]
            inputs = {arg: self.outputs[o.node][o.index].hash for arg, o in node.inputs().items()}
            try:
                parts = self.e.keys.make(node, inputs)
            except OrchestratorError as exc:
                self.finish_failed(name, None, str(exc), None, 0, 0.0, "")
                continue
            hit, reason = self.lookup(name, parts)
            if hit is not None:
                self.finish_cached(name, parts, hit, reason)
            else:
                self.pending_submit.append((name, parts, 1))
                self.reports[name] = StepReport(
                    name, node.step.kind, StepState.PENDING, cache_key=parts.key, reason=reason
                )

    def lookup(self, name: str, parts: KeyParts) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        step = self.g.nodes[name].step
        candidates = []
        prior = self.resume.get(name)
        if prior is not None and prior["cache_key"] == parts.key:
            candidates.append(({"outputs": prior["outputs"], "run_id": prior["run_id"]}, "resumed"))
        if step.cache:
            entry = self.index.get(parts.key) or self.store.cache_get(parts.key, fast=True)
            if entry is not None:
                candidates.append((entry, "hit"))
        problems = []
        for cand, how in candidates:
            refs = [ArtifactRef.from_json(o) for o in cand["outputs"]]
            bad = next((p for r in refs if (p := self.artifacts.verify(r))), None)
            if bad is None:
                return cand, explain_hit(parts, cand.get("run_id"), how)
            problems.append(bad)
            if how == "hit":
                self.store.drop_cache_entries([parts.key])
                self.index.pop(parts.key, None)
        if problems:
            msg = f"{problems[0]}; recomputed"
            self.log_warning(name, msg)
            return None, {"cache": "miss", "summary": msg, "details": [msg]}
        if not step.cache:
            return None, {
                "cache": "disabled",
                "summary": "cache disabled for this step (cache=False)",
            }
        history = self.store.cache_history(self.g.pipeline, name, fast=True)
        return None, explain_miss(parts, history)

    def log_warning(self, name: str, msg: str) -> None:
        if self.e.log is not None:
            self.e.log.warning(msg, run_id=self.run_id, step=name)

    def log_info(self, event: str, **kw: Any) -> None:
        if self.e.log is not None:
            self.e.log.info(event, run_id=self.run_id, pipeline=self.g.pipeline, **kw)

    # -- submitting -----------------------------------------------------------------------
    def executor_for(self, name: str) -> Executor:
        hint = self.g.nodes[name].step.hints.get("executor")
        if (
            hint
            and hint in ("process", "thread", "sequential")
            and self.default_executor != "sequential"
        ):
            return self.e.executor(hint)
        return self.e.executor(self.default_executor)

    def submit_pending(self) -> None:
        """Start what may start. Finished steps and these starts are committed in one
        transaction before any of them runs: a child never runs ahead of the record of
        its inputs, and every running step shows as running."""
        keep, starting = [], []
        for name, parts, attempt in self.pending_submit:
            ex = self.executor_for(name)
            if self.running_on[ex] >= ex.workers:
                keep.append((name, parts, attempt))
                continue
            self.running_on[ex] += 1
            starting.append(self.prepare(name, parts, attempt, ex))
        self.pending_submit = keep
        self.flush()
        for name, inv, attempt, parts, ex in starting:
            self.launch(name, inv, attempt, parts, ex)

    def prepare(
        self, name: str, parts: KeyParts, attempt: int, ex: Executor
    ) -> tuple[str, StepInvocation, int, KeyParts, Executor]:
        """Record a step as running (in the next batch); return what `launch` needs."""
        node = self.g.nodes[name]
        inputs = {arg: self.outputs[o.node][o.index] for arg, o in node.inputs().items()}
        inv = StepInvocation(
            run_id=self.run_id,
            pipeline=self.g.pipeline,
            step=name,
            step_ref=node.step.ref,
            inputs=inputs,
            params=node.params(),
            cache_key=parts.key,
            attempt=attempt,
            pipeline_params=self.g.params,
            serializer=node.step.hints.get("serializer"),
        )
        stamp = now()
        report = self.reports[name]
        report.state, report.attempts = StepState.RUNNING, attempt
        row = {
            "run_id": self.run_id,
            "name": name,
            "state": StepState.RUNNING,
            "attempts": attempt,
            "started_at": stamp,
            "cache_key": parts.key,
            "reason": report.reason,
            "inputs": {k: r.hash for k, r in inputs.items()},
        }
        if attempt == 1:
            self.batch.step_inserts.append(
                row | {"kind": node.step.kind, "params": canonical(parts.params)}
            )
        else:
            self.batch.step_updates.append(
                row
                | {
                    "ended_at": None,
                    "duration": None,
                    "outputs": None,
                    "error": _text(report.error),
                    "log": None,
                }
            )
        self.emit(name, StepState.RUNNING, attempt=attempt)
        return name, inv, attempt, parts, ex

    def launch(
        self, name: str, inv: StepInvocation, attempt: int, parts: KeyParts, ex: Executor
    ) -> None:
        step = self.g.nodes[name].step
        fut = ex.submit(inv, step, self.memo if ex.in_process else None)
        t = time.perf_counter()
        deadline = t + step.timeout if step.timeout else None
        self.running[fut] = _Attempt(name, attempt, parts, t, deadline, ex)

    # -- waiting ----------------------------------------------------------------------------
    def wait_once(self) -> None:
        nowt = time.perf_counter()
        horizon = [a.deadline for a in self.running.values() if a.deadline is not None]
        if self.timers:
            horizon.append(self.timers[0][0])
        timeout = max(0.0, min(horizon) - nowt) if horizon else None
        if self.running:
            done, _ = cf.wait(list(self.running), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        else:
            time.sleep(timeout or 0)
            done = set()
        for fut in done:
            attempt = self.running.pop(fut)
            self.running_on[attempt.executor] -= 1
            self.handle(attempt, fut.result())
        nowt = time.perf_counter()
        for fut, attempt in list(self.running.items()):
            if attempt.deadline is not None and nowt >= attempt.deadline:
                self.running.pop(fut)
                self.running_on[attempt.executor] -= 1
                killed = attempt.executor.kill(fut)
                timeout = self.g.nodes[attempt.name].step.timeout
                note = "" if killed else " (it could not be stopped and was abandoned)"
                self.handle(
                    attempt,
                    StepResult(
                        False,
                        [],
                        f"step '{attempt.name}' timed out after {timeout:g}s{note}",
                        None,
                        "",
                        nowt - attempt.started,
                    ),
                )
        while self.timers and self.timers[0][0] <= time.perf_counter():
            _, _, name, parts, n = heapq.heappop(self.timers)
            self.pending_submit.append((name, parts, n))

    def handle(self, attempt: _Attempt, result: StepResult) -> None:
        name = attempt.name
        step = self.g.nodes[name].step
        if result.ok:
            self.finish_succeeded(attempt, result)
            return
        if attempt.attempt <= step.retries:
            delay = step.retry_backoff * (2 ** (attempt.attempt - 1))
            self.reports[name].error = result.error
            self.emit(name, "retrying", attempt=attempt.attempt, delay=delay, error=result.error)
            self.log_warning(
                name, f"attempt {attempt.attempt} failed: {result.error}; retrying in {delay:g}s"
            )
            heapq.heappush(
                self.timers,
                (
                    time.perf_counter() + delay,
                    id(attempt),
                    name,
                    attempt.parts,
                    attempt.attempt + 1,
                ),
            )
            return
        tb = f"\n{result.traceback}" if result.traceback else ""
        self.finish_failed(
            name,
            attempt.parts,
            result.error or "failed",
            result.log,
            attempt.attempt,
            time.perf_counter() - attempt.started,
            tb,
        )

    # -- finishing --------------------------------------------------------------------------
    def release(self, name: str, refs: list[ArtifactRef]) -> None:
        self.outputs[name] = refs
        for parent in self.g.dag.predecessors(name):
            self.consumers[parent] -= 1
            if self.consumers[parent] == 0:
                for r in self.outputs.get(parent, []):
                    self.memo.pop(r.hash, None)
        for child in self.g.dag.successors(name):
            self.waiting[child] -= 1
            if self.waiting[child] == 0:
                self.queue.append(child)

    def finish_cached(
        self, name: str, parts: KeyParts, entry: dict[str, Any], reason: dict[str, Any]
    ) -> None:
        refs = [ArtifactRef.from_json(o) for o in entry["outputs"]]
        kind = self.g.nodes[name].step.kind
        self.reports[name] = StepReport(
            name, kind, StepState.CACHED, cache_key=parts.key, reason=reason, outputs=refs
        )
        stamp = now()
        self.batch.step_inserts.append(
            {
                "run_id": self.run_id,
                "name": name,
                "kind": kind,
                "state": StepState.CACHED,
                "attempts": 0,
                "started_at": stamp,
                "ended_at": stamp,
                "duration": 0.0,
                "cache_key": parts.key,
                "reason": reason,
                "params": canonical(parts.params),
                "inputs": parts.inputs,
                "outputs": entry["outputs"],
            }
        )
        self.emit(name, StepState.CACHED, cache_key=parts.key)
        self.release(name, refs)

    def finish_succeeded(self, attempt: _Attempt, result: StepResult) -> None:
        name, parts = attempt.name, attempt.parts
        report = self.reports[name]
        report.state, report.duration, report.outputs = (
            StepState.SUCCEEDED,
            result.duration,
            result.outputs,
        )
        report.error = None
        outs = [o.to_json() for o in result.outputs]
        stamp = now()
        self.batch.step_updates.append(
            {
                "run_id": self.run_id,
                "name": name,
                "state": StepState.SUCCEEDED,
                "attempts": attempt.attempt,
                "ended_at": stamp,
                "duration": result.duration,
                "cache_key": parts.key,
                "reason": report.reason,
                "outputs": outs,
                "error": None,
                "log": _text(result.log),
                "inputs": parts.inputs,
            }
        )
        for o in result.outputs:
            self.batch.artifacts[o.hash] = {
                "hash": o.hash,
                "serializer": o.serializer,
                "type": o.type,
                "size": o.size,
                "run_id": self.run_id,
                "step": name,
                "created_at": stamp,
            }
        entry = {
            "cache_key": parts.key,
            "pipeline": self.g.pipeline,
            "step": name,
            "outputs": outs,
            "code": parts.code,
            "params": parts.params,
            "inputs": parts.inputs,
            "run_id": self.run_id,
            "created_at": stamp,
        }
        self.batch.cache_entries.append(entry)
        self.index[parts.key] = entry
        if result.values is not None:
            for ref, value in zip(result.outputs, result.values, strict=True):
                self.memo[ref.hash] = value
        self.emit(name, StepState.SUCCEEDED, duration=result.duration)
        self.release(name, result.outputs)

    def finish_failed(
        self,
        name: str,
        parts: KeyParts | None,
        error: str,
        log: str | None,
        attempts: int,
        duration: float,
        tb: str,
    ) -> None:
        if self.e.log is not None:
            self.e.log.error(
                "step failed",
                run_id=self.run_id,
                step=name,
                error=error.splitlines()[0] if error else "",
            )
        node = self.g.nodes[name]
        report = self.reports.get(name) or StepReport(name, node.step.kind, StepState.FAILED)
        report.state, report.error, report.attempts, report.duration = (
            StepState.FAILED,
            error,
            attempts,
            duration,
        )
        self.reports[name] = report
        row = {
            "run_id": self.run_id,
            "name": name,
            "state": StepState.FAILED,
            "attempts": attempts,
            "ended_at": now(),
            "duration": duration,
            "cache_key": parts.key if parts else None,
            "reason": report.reason,
            "outputs": None,
            "error": _text(error + tb),
            "log": _text(log),
            "inputs": parts.inputs if parts else None,
        }
        if attempts == 0:
            self.batch.step_inserts.append(row | {"kind": node.step.kind, "started_at": now()})
        else:
            self.batch.step_updates.append(row)
        self.emit(name, StepState.FAILED, error=error)
        for desc in self.g.descendants(name):
            if desc in self.reports and self.reports[desc].state != StepState.PENDING:
                continue
            self.skip(desc, name)

    def skip(self, name: str, cause: str) -> None:
        kind = self.g.nodes[name].step.kind
        reason = {"cache": "skipped", "summary": f"upstream step '{cause}' failed"}
        self.reports[name] = StepReport(name, kind, StepState.SKIPPED, reason=reason)
        self.waiting[name] = -1  # never becomes ready
        self.batch.step_inserts.append(
            {
                "run_id": self.run_id,
                "name": name,
                "kind": kind,
                "state": StepState.SKIPPED,
                "attempts": 0,
                "reason": reason,
                "error": f"skipped: upstream step '{cause}' failed",
            }
        )
        self.emit(name, StepState.SKIPPED, cause=cause)


def _text(value: str | None) -> str | None:
    """Text as every database stores it (PostgreSQL rejects NUL characters)."""
    return value.replace("\x00", "\\x00") if value else value
