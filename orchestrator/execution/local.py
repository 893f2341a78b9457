"""Executors: where a step invocation runs. One small interface, several pools.

An executor takes a `StepInvocation` and returns a `concurrent.futures.Future` of a
`StepResult`. The engine's scheduling loop is written once against that interface; each
executor only chooses where the work happens:

* `sequential`: in the calling thread, one at a time (for debugging; timeouts cannot
  interrupt a step here);
* `thread`: a pool of daemon threads (default; steps share memory, so outputs pass
  without a reload; a timeout stops pure Python code, and abandons a step blocked in C);
  a lone step may run in the engine's own thread instead (`run_here`, see
  `engine.overseer`);
* `process`: one forked process per step attempt (for CPU-bound steps; a timeout kills it,
  and it dies with its runner, even one killed with SIGKILL).

The two in-process executors write a step's outputs in the background
(`WritingExecutor`, `artifacts.writer`): the step's worker is free once it has returned,
its values reach in-process children from memory, and its future completes (so the
engine records it finished) only once every output file is in place. Outputs that are
all scalars (or short strings) are written by the step's own thread at once: their
small file costs less than the hand-off to the writer's thread.

Executors never touch the metadata store.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import ctypes
import dataclasses
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from orchestrator.artifacts.store import ArtifactRef, ArtifactStore, Prepared
from orchestrator.artifacts.writer import BackgroundWriter, run_guarded
from orchestrator.errors import ExecutorError
from orchestrator.execution.context import Registry
from orchestrator.execution.worker import (
    StepInvocation,
    StepResult,
    execute,
    pack_error,
    store_outputs,
    write_failed,
)
from orchestrator.model.step import Step

_STOP_WAIT = 0.2  # seconds a stopped thread step gets to unwind
_PARENT_POLL = 1.0  # seconds between a step process's checks that its runner lives
_PR_SET_PDEATHSIG = 1


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

    def prewarm(self, steps: list[Step[Any]], run_id: str) -> None:
        """A hint that `steps` of run `run_id` will be submitted soon: get ready for them
        in the background (the Docker executor starts their containers). Default: nothing."""
        return None

    def shutdown(self) -> None:
        return None


class WritingExecutor(Executor):
    """An in-process executor whose steps' outputs are written in the background: the
    step's work ends with its values, and its future completes once they are stored
    (`artifacts.writer`), so the next step runs while a large output is written."""

    def __init__(
        self,
        artifacts: ArtifactStore,
        registry_factory: Callable[[], Registry] | None = None,
        echo: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(artifacts, registry_factory, echo)
        self.writer = BackgroundWriter()
        self.writer.start()  # ready before the first large output (small ones skip it)

    def run_deferred(
        self, inv: StepInvocation, step: Step[Any], memo: dict[str, Any] | None
    ) -> StepResult:
        """Run the step; a success comes back with its values, its outputs not stored yet."""
        return execute(
            inv,
            step,
            self.artifacts,
            memo=memo,
            registry_factory=self.registry_factory,
            echo=self.echo,
            defer=True,
        )

    def complete(
        self,
        fut: Future[StepResult],
        inv: StepInvocation,
        result: StepResult,
        memo: dict[str, Any] | None,
    ) -> None:
        """Complete `fut` with `result`: at once for a failure, after the write for a
        success. `computed(fut)` is set once the write is queued: the engine may then give
        the step's slot to another step while the write goes on (a full queue keeps the
        slot taken, so memory stays bounded)."""
        if not result.ok:
            _settle(fut, result)
            return
        t0 = time.perf_counter()
        values = result.values or []
        if all(_small(v) for v in values):  # cheaper here than handed off
            final = store_outputs(result, inv, self.artifacts, t0)
            _settle(fut, final if memo is not None else final.without_values())
            return
        try:
            prepared = prepare_outputs(values, inv.serializer, self.artifacts)
        except Exception as exc:  # noqa: BLE001 - fails the step as a failed write would
            _settle(fut, write_failed(result, exc, t0))
            return

        def write() -> None:
            final = store_outputs(result, inv, self.artifacts, t0, prepared)
            _settle(fut, final if memo is not None else final.without_values())

        def failed(exc: BaseException) -> None:
            message, tb = pack_error(exc)
            _settle(fut, StepResult(False, [], f"step '{inv.step}': {message}", tb, "", 0.0))

        self.writer.hand_off(run_guarded(write, failed))  # blocks while the queue is full
        early = None
        if prepared is not None and memo is not None:
            refs = [p if isinstance(p, ArtifactRef) else p.ref for p in prepared]
            early = Early(refs, values)
        computed(fut).set_result(early)

    def shutdown(self) -> None:
        self.writer.close()


_SCALARS = frozenset({int, float, bool, type(None)})
SMALL_TEXT = 4096  # characters: a string output this short is stored by the step's thread


def _small(value: Any) -> bool:
    """Whether `value` is a scalar (or a short string): its file costs less to write
    than handing the write to the background writer and waiting for its thread."""
    kind = type(value)
    return kind in _SCALARS or (kind is str and len(value) <= SMALL_TEXT)


@dataclasses.dataclass(frozen=True, slots=True)
class Early:
    """A step's outputs known before their write ends: the refs they will be stored
    under (hashed ahead, `ArtifactStore.prepare`) and the values themselves."""

    refs: list[ArtifactRef]
    values: list[Any]


def prepare_outputs(
    values: list[Any], serializer: str | None, store: ArtifactStore
) -> list[Prepared | ArtifactRef] | None:
    """Each output hashed ahead of its write (a small one stored at once), when all can
    be: then the step's children may start on the values while the write goes on. None
    when one cannot (pickled, say): its write alone makes its hash."""
    out: list[Prepared | ArtifactRef] = []
    for v in values:
        if _small(v):
            continue
        p = store.prepare(v, serializer)
        if p is None:
            return None
        out.append(p)
    it = iter(out)
    return [store.put(v, serializer) if _small(v) else next(it) for v in values]


def computed(fut: Future[StepResult]) -> Future[Early | None]:
    """The future set when `fut`'s step has computed its outputs and only their write
    is left (never set for a step that fails, or on an executor that does not write in
    the background); its result is the `Early` outputs, when they were hashed ahead."""
    got: Future[Early | None] | None = getattr(fut, "orch_computed", None)
    if got is None:
        got = Future()
        fut.orch_computed = got  # type: ignore[attr-defined]
    return got


def _settle(fut: Future[StepResult], result: StepResult) -> None:
    if not fut.done():
        with contextlib.suppress(Exception):  # cancelled meanwhile: nobody waits for it
            fut.set_result(result)


class SequentialExecutor(WritingExecutor):
    name = "sequential"

    def submit(
        self, inv: StepInvocation, step: Step[Any], memo: dict[str, Any] | None
    ) -> Future[StepResult]:
        fut: Future[StepResult] = Future()
        self.complete(fut, inv, self.run_deferred(inv, step, memo), memo)
        return fut


class StepTimedOut(BaseException):
    """Raised inside a thread step whose timeout passed (pure Python code only sees it)."""


def _in_thread(fut: Future[StepResult], work: Callable[[], StepResult | None], step: str) -> None:
    """Run `work`; its result completes `fut`, unless it is None (`work` handed the
    completion on, to the background writer)."""
    try:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            result = work()
        except BaseException as exc:  # noqa: BLE001 - nothing escapes the boundary
            message, tb = pack_error(exc)
            result = StepResult(False, [], f"step '{step}': {message}", tb, "", 0.0)
        if result is not None and not fut.done():
            fut.set_result(result)
    except BaseException:  # noqa: BLE001, S110 - a stop request landing after the step ended
        pass


class ThreadExecutor(WritingExecutor):
    """A pool of daemon threads, reused across attempts (the engine bounds how many run
    at once, so the pool never grows past its `workers`).

    Daemon threads, not a `ThreadPoolExecutor`, whose threads the interpreter joins at
    exit: a step abandoned after its timeout must not keep the command from exiting.
    Reused, not one per attempt: starting a thread costs about 0.1 ms here, as much as
    the rest of a no-op step. `kill` raises `StepTimedOut` in the step's thread, which
    stops pure Python code at its next bytecode; a step blocked in C (`time.sleep`, a
    socket, a NumPy kernel) runs on until it returns, or until the command exits. A
    thread a kill was aimed at serves no other attempt: it ends once its step returns.
    """

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
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting on the queue, not yet promised to a job
        self._threads = 0  # threads that will take jobs (retired ones not counted)
        self._running: dict[int, threading.Thread] = {}  # id(future) -> its thread
        self._retired: set[threading.Thread] = set()
        self._here: dict[int, list[Any]] = {}  # id(future) -> [caller's thread, kill aimed]

    def submit(
        self, inv: StepInvocation, step: Step[Any], memo: dict[str, Any] | None
    ) -> Future[StepResult]:
        fut: Future[StepResult] = Future()
        computed(fut)  # made here, before the step's thread may set it

        def work() -> None:
            self.complete(fut, inv, self.run_deferred(inv, step, memo), memo)

        with self._lock:
            spawn = self._idle == 0
            if spawn:
                self._threads += 1
            else:
                self._idle -= 1
        self._queue.put((fut, work, inv.step))
        if spawn:
            threading.Thread(target=self._serve, daemon=True, name="orch-step").start()
        return fut

    def _serve(self) -> None:
        me = threading.current_thread()
        try:
            while (job := self._queue.get()) is not None:
                fut, work, label = job
                with self._lock:
                    self._running[id(fut)] = me
                _in_thread(fut, work, label)
                with self._lock:
                    self._running.pop(id(fut), None)
                    if me in self._retired:
                        self._retired.discard(me)
                        return
                    self._idle += 1
        except StepTimedOut:  # a stop request that landed just after its step returned
            with self._lock:
                self._retired.discard(me)

    def run_here(
        self,
        fut: Future[StepResult],
        inv: StepInvocation,
        step: Step[Any],
        memo: dict[str, Any] | None,
    ) -> None:
        """Run the step in the calling thread (the engine's, when the step is alone and
        nothing else runs; see `engine.overseer`) and complete `fut` as `submit` would,
        without the two thread wake-ups a pool thread costs. `kill(fut)` from another
        thread stops it as it stops a pool thread's step. The step runs in a copy of the
        caller's context, so whatever context variables it sets stay its own."""
        computed(fut)
        fut.set_running_or_notify_cancel()
        me = threading.get_ident()
        with self._lock:
            self._here[id(fut)] = [me, False]  # the thread, whether a kill was aimed at it
        try:
            try:
                result = contextvars.copy_context().run(self.run_deferred, inv, step, memo)
            finally:
                with self._lock:
                    if self._here.pop(id(fut))[1]:  # aimed, maybe not raised yet: never
                        _raise_in(me, None)  # let it land in the caller's code
        except StepTimedOut:  # it landed between the step's return and the line above
            with self._lock:
                self._here.pop(id(fut), None)
            result = StepResult(False, [], f"step '{inv.step}': stopped", None, "", 0.0)
        self.complete(fut, inv, result, memo)

    def kill(self, future: Future[StepResult]) -> bool:
        """Raise `StepTimedOut` in the step's thread; True if the step then ended (a step
        running `here` is only told: its thread is the caller's, never waited for)."""
        with self._lock:
            here = self._here.get(id(future))
            if here is not None:
                if not here[1]:  # one exception per step: a second could land after it
                    here[1] = True
                    _raise_in(here[0], StepTimedOut)
                return False
            thread = self._running.pop(id(future), None)
            if thread is None:
                return future.cancel() or future.done()  # not started yet, or just ended
            self._retired.add(thread)
            self._threads -= 1
            if thread.ident is not None:
                _raise_in(thread.ident, StepTimedOut)
        thread.join(_STOP_WAIT)
        return not thread.is_alive()

    def shutdown(self) -> None:
        """Let the idle threads end (a notebook makes an executor per run)."""
        super().shutdown()
        with self._lock:
            n, self._threads, self._idle = self._threads, 0, 0
        for _ in range(n):
            self._queue.put(None)


def _raise_in(ident: int, exc: type[BaseException] | None) -> None:
    """Have thread `ident` raise `exc` at its next bytecode (None: forget one pending)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else None
    )


_Job = tuple[Future[StepResult], Callable[[], StepResult | None], str]


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL)
    os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(parent: int) -> None:
    """In a forked step process: end when the runner `parent` ends, however it ends.

    On Linux the kernel sends SIGKILL when the forking thread dies (`PR_SET_PDEATHSIG`):
    `submit` runs in the engine's scheduling thread, which outlives every step it
    starts. A daemon thread polling the parent's pid backs it up where `prctl` is
    missing (macOS), within `_PARENT_POLL` seconds."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the runner died between the fork and the line above
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _child(
    conn: Any,
    parent: int,
    inv: StepInvocation,
    step: Step[Any],
    artifacts: ArtifactStore,
    registry_factory: Callable[[], Registry] | None,
) -> None:
    die_with_parent(parent)
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
            args=(send, os.getpid(), inv, step, self.artifacts, self.registry_factory),
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
