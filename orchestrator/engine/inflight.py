"""Attempts in flight: futures running on executors, and retries waiting for their backoff.

State kept:

* `running`: future -> `Attempt` (step, attempt number, key, start, deadline, executor);
* `busy[executor]`: how many attempts run on it (an executor takes `workers` at most),
  less those in `writing` (computed, only their outputs' background write left: their
  slot is free for another step, see `execution.local.WritingExecutor`);
* `early`: attempts computed whose outputs were hashed ahead of their write (`Early`),
  not yet taken by the engine, which may start their children on the values;
* `timers`: a heap of `(due, seq, name, parts, attempt)` for retries after a backoff.

`wait` blocks until the first completion, end of a computation, deadline, due retry or
`limit` seconds (the engine's cancel poll) and returns what
finished: each completed future's result, and for each attempt past its deadline a
failure saying it timed out (the executor is asked to kill it; if it cannot, the
attempt is abandoned and the message says so). A finished attempt leaves `running`
and frees its executor's slot before it is returned.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import heapq
import itertools
import time

from orchestrator.cache.keys import KeyParts
from orchestrator.execution.local import Early, Executor
from orchestrator.execution.worker import StepResult

Retry = tuple[str, KeyParts, int]


@dataclasses.dataclass
class Attempt:
    name: str
    attempt: int
    parts: KeyParts
    started: float
    deadline: float | None
    executor: Executor
    timeout: float | None = None
    timed_out: bool = False


class InFlight:
    def __init__(self) -> None:
        self.running: dict[cf.Future[StepResult], Attempt] = {}
        self.busy: dict[Executor, int] = {}
        self.timers: list[tuple[float, int, str, KeyParts, int]] = []
        self.writing: set[cf.Future[StepResult]] = set()
        self.early: list[tuple[Attempt, Early]] = []  # computed, outputs hashed ahead
        self._seq = itertools.count()

    def __bool__(self) -> bool:
        return bool(self.running or self.timers)

    def has_room(self, ex: Executor) -> bool:
        return self.busy.get(ex, 0) < ex.workers

    def _computing(self) -> list[cf.Future[Early | None]]:
        """The end-of-computation signals still to see (background-writing executors)."""
        out = []
        for fut in self.running:
            signal = getattr(fut, "orch_computed", None)
            if signal is not None and fut not in self.writing:
                out.append(signal)
        return out

    def _note_computed(self, done: set[cf.Future[Early | None]]) -> None:
        for fut, attempt in self.running.items():
            signal = getattr(fut, "orch_computed", None)
            if fut not in self.writing and signal in done:
                self.writing.add(fut)
                self.busy[attempt.executor] -= 1  # its slot is free; the write goes on
                early = signal.result()
                if early is not None:
                    self.early.append((attempt, early))

    def take_early(self) -> list[tuple[Attempt, Early]]:
        """The attempts seen computed with their outputs hashed ahead, since last asked."""
        out, self.early = self.early, []
        return out

    def reserve(self, ex: Executor) -> None:
        self.busy[ex] = self.busy.get(ex, 0) + 1

    def add(self, fut: cf.Future[StepResult], attempt: Attempt) -> None:
        self.running[fut] = attempt

    def retry_later(self, delay: float, retry: Retry) -> None:
        name, parts, n = retry
        heapq.heappush(self.timers, (time.perf_counter() + delay, next(self._seq), name, parts, n))

    def _pop(self, fut: cf.Future[StepResult]) -> Attempt:
        attempt = self.running.pop(fut)
        if fut in self.writing:
            self.writing.discard(fut)
        else:
            self.busy[attempt.executor] -= 1
        return attempt

    def wait(self, limit: float | None = None) -> list[tuple[Attempt, StepResult]]:
        """What finished by the first completion, deadline or due retry (see the module)."""
        horizon = [a.deadline for a in self.running.values() if a.deadline is not None]
        if self.timers:
            horizon.append(self.timers[0][0])
        if limit is not None:
            horizon.append(time.perf_counter() + limit)
        timeout = max(0.0, min(horizon) - time.perf_counter()) if horizon else None
        if self.running:
            signals = self._computing()
            waited = [*self.running, *signals]
            done, _ = cf.wait(waited, timeout=timeout, return_when=cf.FIRST_COMPLETED)
            self._note_computed({f for f in signals if f.done()})
        else:
            time.sleep(timeout or 0)
            done = set()
        out = [(self._pop(fut), fut.result()) for fut in done if fut in self.running]
        return out + self._expired()

    def _expired(self) -> list[tuple[Attempt, StepResult]]:
        out = []
        t = time.perf_counter()
        for fut, attempt in list(self.running.items()):
            if attempt.deadline is None or t < attempt.deadline:
                continue
            self._pop(fut)
            killed = attempt.executor.kill(fut)
            note = "" if killed else " (it could not be stopped and was abandoned)"
            error = f"step '{attempt.name}' timed out after {attempt.timeout:g}s{note}"
            attempt.timed_out = True
            out.append((attempt, StepResult(False, [], error, None, "", t - attempt.started)))
        return out

    def drop_retries(self, names: set[str]) -> list[Retry]:
        """Take the waiting retries of `names` off the timers (they will not run)."""
        out = [(name, parts, n) for _, _, name, parts, n in self.timers if name in names]
        if out:
            self.timers = [t for t in self.timers if t[2] not in names]
            heapq.heapify(self.timers)
        return out

    def due(self) -> list[Retry]:
        """Retries whose backoff has passed, taken off the timers."""
        out = []
        while self.timers and self.timers[0][0] <= time.perf_counter():
            _, _, name, parts, n = heapq.heappop(self.timers)
            out.append((name, parts, n))
        return out

    def cancel(self) -> None:
        for fut in self.running:
            fut.cancel()

    def kill_all(self) -> list[str]:
        """Ask each executor to kill its running attempts and drop the waiting retries;
        returns the names of their steps."""
        names = []
        for fut, attempt in list(self.running.items()):
            self._pop(fut)
            attempt.executor.kill(fut)
            names.append(attempt.name)
        names.extend(name for _, _, name, _, _ in self.timers)
        self.timers.clear()
        return names
