"""The heap a process held before a run is left out of the collector's walks during the
run (`engine/heap.py`) and given back after it; garbage made by a step is still
collected during the run, and a process that froze its heap itself keeps its freeze."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import pytest

from orchestrator import pipeline, step
from orchestrator.engine.heap import frozen_heap
from orchestrator.engine.loop import Engine

SEEN: dict[str, Any] = {}


class Cycle:
    def __init__(self) -> None:
        self.me = self


@step
def probe() -> int:
    SEEN["frozen"] = gc.get_freeze_count()
    made = Cycle()  # garbage only the cyclic collector can free
    ref = weakref.ref(made)
    del made
    gc.collect()
    SEEN["step garbage collected"] = ref() is None
    return 1


@pipeline
def probed() -> None:
    probe()


@pytest.mark.parametrize("executor", ["thread", "sequential"])
def test_a_run_freezes_the_old_heap_and_gives_it_back(engine: Engine, executor: str) -> None:
    gc.collect()
    assert gc.get_freeze_count() == 0
    old = Cycle()  # garbage made before the run: frozen during it, collected after
    ref = weakref.ref(old)
    del old
    SEEN.clear()
    result = engine.run(probed.build(), target="tests:probed", executor=executor)
    assert {str(s.state) for s in result.steps} == {"succeeded"}
    assert SEEN["frozen"] > 0
    assert SEEN["step garbage collected"]
    assert ref() is not None  # the step's gc.collect() did not walk the frozen heap
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert ref() is None


def test_a_freeze_the_process_made_is_kept(engine: Engine) -> None:
    gc.collect()
    old = Cycle()
    ref = weakref.ref(old)
    del old
    gc.freeze()
    try:
        engine.run(probed.build(), target="tests:probed", executor="thread")
        gc.collect()
        assert ref() is not None  # still frozen: the run did not undo the process's freeze
    finally:
        gc.unfreeze()
    gc.collect()
    assert ref() is None


def test_runs_in_threads_share_one_freeze_undone_by_the_last() -> None:
    gc.collect()
    inside, leave = threading.Event(), threading.Event()

    def long_run() -> None:
        with frozen_heap():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=long_run)
    t.start()
    assert inside.wait(10)
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() > 0  # the other run is still going
    leave.set()
    t.join(10)
    assert gc.get_freeze_count() == 0
