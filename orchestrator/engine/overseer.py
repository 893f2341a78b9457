"""A lone step run in the engine's own thread, and the thread that minds the run meanwhile.

When one step is ready on the thread executor and nothing else is (no attempt running,
writing its outputs or waiting for a retry, nothing else ready, no timeout on the step),
the loop runs it in its own thread (`ThreadExecutor.run_here`): a pool thread would cost
two thread wake-ups, the step's and the loop's, about 0.1 ms here, as much as the rest
of a no-op step. A chain of steps runs this way from end to end.

While such a step runs, the loop cannot do what it does while it waits for a pool
thread, so a daemon thread (one per run, started with its first such step) does it,
every `PERIOD` seconds once the step has run that long:

* it commits the batch (the step's `running` row): `orch status` and the UI see the
  step run, as they see a pool thread's;
* it asks whether the run was cancelled (`CancelWatch`, which reads the store once per
  poll at most); if so it stops the step as the thread executor stops a timed-out one
  (an exception raised in the step's thread, seen by pure Python code at its next
  bytecode), and the loop then records the run cancelled.

One lock keeps the two threads apart: the engine's thread takes it to start and to end
such a step, the minder holds it for each of its visits and acts only while a step runs,
so the store's connection and the batch are never used by both at once. A failure of
the minder's commit is raised in the engine's thread once the step has returned.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from orchestrator.execution.local import ThreadExecutor
from orchestrator.execution.worker import StepInvocation, StepResult
from orchestrator.model.step import Step

if TYPE_CHECKING:
    from orchestrator.engine.cancel import CancelWatch
    from orchestrator.engine.recorder import Recorder

PERIOD = 0.05
"""Seconds between two visits of the minder while a step runs in the engine's thread."""


def may_run_here(ex: Any, step: Step[Any]) -> bool:
    """Whether `step` may run in the engine's thread on `ex`: the thread executor, no
    timeout (a pool thread's step can be abandoned when it passes its timeout; the
    engine's thread cannot be), and no asyncio loop running in this thread (a step
    calling `asyncio.run` works on a pool thread, as it would in a notebook's cell)."""
    if not isinstance(ex, ThreadExecutor) or step.timeout is not None:
        return False
    aio = sys.modules.get("asyncio")
    return aio is None or aio.events._get_running_loop() is None


class Overseer:
    def __init__(self, record: Recorder, cancel: CancelWatch) -> None:
        self.record, self.cancel = record, cancel
        self.lock = threading.Lock()
        self.current: tuple[ThreadExecutor, Future[StepResult], float] | None = None
        self.error: BaseException | None = None
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def run(
        self,
        ex: ThreadExecutor,
        inv: StepInvocation,
        step: Step[Any],
        memo: dict[str, Any] | None,
    ) -> Future[StepResult]:
        """Run the step in this thread, minded; its future, completed (or writing)."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._mind, daemon=True, name="orch-minder")
            self.thread.start()
        fut: Future[StepResult] = Future()
        with self.lock:
            self.current = (ex, fut, time.perf_counter())
        try:
            ex.run_here(fut, inv, step, memo)
        finally:
            with self.lock:
                self.current = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return fut

    def _mind(self) -> None:
        while not self.stopped.wait(PERIOD):
            with self.lock:
                if self.current is None or self.error is not None:
                    continue
                ex, fut, started = self.current
                if time.perf_counter() - started < PERIOD:
                    continue
                try:
                    self.record.flush()
                    if self.cancel.requested():
                        ex.kill(fut)
                except BaseException as exc:  # noqa: BLE001 - raised in the engine's thread
                    self.error = exc

    def close(self) -> None:
        """End the minder (the run is over)."""
        self.stopped.set()
