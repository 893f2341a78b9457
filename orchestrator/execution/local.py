"""Executors: where a step invocation runs. One small interface, several pools.

An executor takes a `StepInvocation` and returns a `concurrent.futures.Future` of a
`StepResult`. The engine's scheduling loop is written once against that interface; each
executor only chooses where the work happens:

* `sequential`: in the calling thread, one at a time (for debugging; timeouts cannot
  interrupt a step here);
* `thread`: a thread pool (default; steps share memory, so outputs pass without a reload);
* `process`: one forked process per step attempt (for CPU-bound steps; a timeout kills it).

Executors never touch the metadata store.
"""

from __future__ import annotations

import abc
import multiprocessing as mp
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.errors import ExecutorError
from orchestrator.execution.context import Registry
from orchestrator.execution.worker import StepInvocation, StepResult, execute
from orchestrator.model.step import Step


class Executor(abc.ABC):
    name: str = "executor"
    in_process: bool = True  # whether results may carry in-memory values
    workers: int = 1

    def __init__(
        self,
        artifacts: ArtifactStore,
        registry_factory: Callable[[], Registry] | None = None,
        echo: Callable[..., Any] | None = None,
    ) -> None:
        self.artifacts, self.registry_factory, self.echo = artifacts, registry_factory, echo

    @abc.abstractmethod
    def submit(
        self, inv: StepInvocation, step: Step[Any], memo: dict[str, Any] | None
    ) -> Future[StepResult]: ...

    def kill(self, future: Future[StepResult]) -> bool:
        """Stop a running invocation (timeouts); False when it cannot be interrupted."""
        return False

    def shutdown(self) -> None:
        return None


class SequentialExecutor(Executor):
    name = "sequential"

    def submit(
        self, inv: StepInvocation, step: Step[Any], memo: dict[str, Any] | None
    ) -> Future[StepResult]:
        fut: Future[StepResult] = Future()
        fut.set_result(
            execute(
                inv,
                step,
                self.artifacts,
                memo=memo,
                registry_factory=self.registry_factory,
                echo=self.echo,
            )
        )
        return fut


class ThreadExecutor(Executor):
    name = "thread"

    def __init__(
        self,
        artifacts: ArtifactStore,
        registry_factory: Callable[[], Registry] | None = None,
        echo: Callable[..., Any] | None = None,
        workers: int | None = None,
    ) -> None:
        super().__init__(artifacts, registry_factory, echo)
        self.workers = workers or min(16, (os.cpu_count() or 2) * 4)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="orch-step")

    def submit(
        self, inv: StepInvocation, step: Step[Any], memo: dict[str, Any] | None
    ) -> Future[StepResult]:
        return self._pool.submit(
            execute,
            inv,
            step,
            self.artifacts,
            memo=memo,
            registry_factory=self.registry_factory,
            echo=self.echo,
        )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _child(
    conn: Any,
    inv: StepInvocation,
    step: Step[Any],
    artifacts: ArtifactStore,
    registry_factory: Callable[[], Registry] | None,
) -> None:
    result = execute(inv, step, artifacts, registry_factory=registry_factory)
    conn.send(result.without_values())
    conn.close()


class ProcessExecutor(Executor):
    """One forked process per attempt: isolated, killable, no pickling of the step."""

    name = "process"
    in_process = False

    def __init__(
        self,
        artifacts: ArtifactStore,
        registry_factory: Callable[[], Registry] | None = None,
        echo: Callable[..., Any] | None = None,
        workers: int | None = None,
    ) -> None:
        super().__init__(artifacts, registry_factory, echo)
        if "fork" not in mp.get_all_start_methods():
            raise ExecutorError("the process executor needs fork (Linux or macOS)")
        self._ctx = mp.get_context("fork")
        self.workers = workers or (os.cpu_count() or 2)
        self._procs: dict[int, Any] = {}

    def submit(
        self, inv: StepInvocation, step: Step[Any], memo: dict[str, Any] | None
    ) -> Future[StepResult]:
        fut: Future[StepResult] = Future()
        recv, send = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_child,
            args=(send, inv, step, self.artifacts, self.registry_factory),
            daemon=True,
        )
        proc.start()
        send.close()
        self._procs[id(fut)] = proc
        threading.Thread(target=self._wait, args=(fut, proc, recv, inv), daemon=True).start()
        return fut

    def _wait(self, fut: Future[StepResult], proc: Any, recv: Any, inv: StepInvocation) -> None:
        try:
            result = recv.recv()
        except (EOFError, OSError):
            proc.join()
            code = proc.exitcode
            why = f"killed by signal {-code}" if code and code < 0 else f"exit code {code}"
            result = StepResult(
                False, [], f"step '{inv.step}': its process died ({why})", None, "", 0.0
            )
        proc.join()
        self._procs.pop(id(fut), None)
        if not fut.done():
            fut.set_result(result)

    def kill(self, future: Future[StepResult]) -> bool:
        proc = self._procs.get(id(future))
        if proc is None:
            return False
        proc.kill()
        return True

    def shutdown(self) -> None:
        for proc in list(self._procs.values()):
            proc.kill()


EXECUTORS: dict[str, type[Executor]] = {
    "sequential": SequentialExecutor,
    "thread": ThreadExecutor,
    "process": ProcessExecutor,
}


def make_executor(
    name: str,
    artifacts: ArtifactStore,
    *,
    registry_factory: Callable[[], Registry] | None = None,
    echo: Callable[..., Any] | None = None,
) -> Executor:
    try:
        cls = EXECUTORS[name]
    except KeyError:
        raise ExecutorError(
            f"unknown executor '{name}'; choose one of {', '.join(EXECUTORS)}"
        ) from None
    return cls(artifacts, registry_factory, echo)
