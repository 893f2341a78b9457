"""A lone ready step on the thread executor runs in the engine's own thread
(`engine.overseer`), on a real SQLite store: which steps do, which stay on pool threads,
and what the minder thread does while one runs (its `running` row is committed, a cancel
request stops it). A kill aimed at such a step never reaches the caller's own code."""

from __future__ import annotations

import asyncio
import contextvars
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

from orchestrator import pipeline, step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine, RunResult
from orchestrator.execution.local import ThreadExecutor
from orchestrator.execution.worker import StepInvocation, StepResult

T = TypeVar("T")
SEEN: dict[str, int] = {}  # step -> the ident of the thread it ran in


@step
def first() -> int:
    SEEN["first"] = threading.get_ident()
    return 1


@step
def left(x: int) -> int:
    SEEN["left"] = threading.get_ident()
    time.sleep(0.05)  # both branches are in flight together
    return x


@step
def right(x: int) -> int:
    SEEN["right"] = threading.get_ident()
    time.sleep(0.05)
    return x


@step
def join(a: int, b: int) -> int:
    SEEN["join"] = threading.get_ident()
    return a + b


@step(timeout=60)
def bounded(x: int) -> int:
    SEEN["bounded"] = threading.get_ident()
    return x


@pipeline
def diamond():
    x = first()
    bounded(join(left(x), right(x)))


def in_a_new_thread(fn: Callable[[], T]) -> tuple[T, int]:
    """`fn()` in a thread of its own, as a caller would run the engine: no event loop
    runs there (one an earlier test left in this thread would keep steps off it)."""
    got: list[T] = []
    caller = threading.Thread(target=lambda: got.append(fn()))
    caller.start()
    caller.join(timeout=60)
    assert got, "the run never ended"
    assert caller.ident is not None
    return got[0], caller.ident


def test_lone_steps_run_in_the_engines_thread_and_the_others_on_pool_threads(
    engine: Engine,
) -> None:
    SEEN.clear()
    result, me = in_a_new_thread(
        lambda: engine.run(diamond.build(), target="bounded", executor="thread")
    )
    assert result.status == "succeeded"
    assert SEEN["first"] == me and SEEN["join"] == me  # each alone when it started
    assert me not in (SEEN["left"], SEEN["right"])  # two ready at once
    assert SEEN["left"] != SEEN["right"]
    assert SEEN["bounded"] != me  # a timeout needs a thread that can be abandoned
    outputs = {s.name: s.state for s in result.steps}
    assert set(outputs.values()) == {"succeeded"}


VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


@step
def sets_a_context_variable() -> str:
    VAR.set("set by the step")
    SEEN["setter"] = threading.get_ident()
    return VAR.get()


@pipeline
def setter():
    sets_a_context_variable()


def test_a_context_variable_the_step_sets_stays_its_own(engine: Engine) -> None:
    SEEN.clear()

    def call() -> tuple[RunResult, str]:
        result = engine.run(setter.build(), target="sets_a_context_variable", executor="thread")
        return result, VAR.get()

    (result, after), me = in_a_new_thread(call)
    assert result.status == "succeeded"
    assert SEEN["setter"] == me
    assert after == "unset"


@step
def uses_asyncio() -> int:
    SEEN["aio"] = threading.get_ident()

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    return asyncio.run(answer())


@pipeline
def aio():
    uses_asyncio()


def test_a_step_calling_asyncio_run_works_when_the_engine_runs_inside_a_loop(
    engine: Engine,
) -> None:
    """As in a notebook's cell, where an event loop runs in the caller's thread."""
    SEEN.clear()

    async def cell() -> RunResult:
        return engine.run(aio.build(), target="uses_asyncio", executor="thread")

    result, me = in_a_new_thread(lambda: asyncio.run(cell()))
    assert result.status == "succeeded", [s.error for s in result.steps]
    assert SEEN["aio"] != me


@step
def spins(started: str) -> int:
    SEEN["spins"] = threading.get_ident()
    Path(started).touch()
    n = 0
    while True:  # pure Python: stopped at its next bytecode
        n += 1


@step
def never(x: int) -> int:
    return x


@pipeline
def spinning(started: str = ""):
    never(spins(started))


def test_a_step_in_the_engines_thread_is_seen_running_and_stopped_by_a_cancel(
    engine: Engine, tmp_path: Path
) -> None:
    SEEN.clear()
    started = tmp_path / "started"
    got: list[RunResult] = []
    graph = spinning.build({"started": str(started)})
    runner = threading.Thread(
        target=lambda: got.append(engine.run(graph, target="never", run_id="r1", executor="thread"))
    )
    runner.start()
    store = engine.store
    deadline = time.monotonic() + 30
    while not (started.exists() and [r["state"] for r in store.step_runs("r1")] == ["running"]):
        assert runner.is_alive() and time.monotonic() < deadline, "never seen running"
        time.sleep(0.02)
    assert SEEN["spins"] == runner.ident  # the engine's own thread
    assert store.request_cancel("r1")
    runner.join(timeout=30)
    assert not runner.is_alive(), "the cancel never stopped the step"
    result = got[0]
    assert result.status == "cancelled"
    assert {s.name: s.state for s in result.steps}["spins"] == "interrupted"
    rows = {r["name"]: r["state"] for r in store.step_runs("r1")}
    assert rows == {"spins": "interrupted"}
    assert store.get_run("r1")["status"] == "cancelled"


def test_a_kill_aimed_as_the_step_returns_never_reaches_the_caller(tmp_path: Path) -> None:
    """The kill lands in the step, or it is withdrawn before `run_here` returns: the
    caller's own code, run on after it, never sees it (many tries, random timings)."""
    artifacts = ArtifactStore(tmp_path / "artifacts")
    ex = ThreadExecutor(artifacts)
    fut_box: list[Future[StepResult]] = []

    @step
    def quick() -> int:
        delay = random.uniform(0, 0.0002)
        killer = threading.Timer(delay, ex.kill, args=(fut_box[-1],))
        killer.start()
        return sum(range(200))  # a few bytecodes for the kill to land in, or not

    inv = StepInvocation("r", "p", "quick", "quick", {}, {}, "key", 1, {})
    outcomes = set()
    try:
        for _ in range(300):
            fut: Future[StepResult] = Future()
            fut_box.append(fut)
            ex.run_here(fut, inv, quick, None)
            result = fut.result(timeout=10)
            outcomes.add(result.ok)
            total = 0
            for i in range(20000):  # the caller's code: a pending kill would land here
                total += i
            time.sleep(0.0005)  # let a late timer fire: it finds nothing to aim at
            assert total == sum(range(20000))
    finally:
        ex.shutdown()
    assert True in outcomes  # most returned first
