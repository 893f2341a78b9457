"""The engine loop on real stores: partial runs, the up-front never-computed error, and
`RunResult.raise_for_status` turning a failed step into `StepFailed` / `StepTimeout`."""

from __future__ import annotations

import time

import pytest
from shapes import diamond

from orchestrator import pipeline, step
from orchestrator.engine.loop import Engine, RunResult
from orchestrator.engine.selection import Selection
from orchestrator.errors import NeverComputed, StepFailed, StepTimeout
from orchestrator.model.graph import Graph


def go(engine: Engine, graph: Graph, **kw: object) -> RunResult:
    return engine.run(graph, target="T", **kw)  # type: ignore[arg-type]


def states(result: RunResult) -> dict[str, str]:
    return {s.name: s.state for s in result.steps}


def test_a_partial_run_takes_upstream_from_the_cache_and_leaves_the_rest_out(engine) -> None:
    go(engine, diamond(), selection=Selection.parse(to="left"))
    result = go(engine, diamond(), selection=Selection.parse(only="side"))
    assert states(result) == {"load": "cached", "side": "succeeded"}
    run = engine.store.get_run(result.run_id)
    assert run["trigger"] == {"kind": "manual", "selection": {"only": ["side"]}}


def test_a_missing_upstream_output_is_raised_before_the_run_is_recorded(engine) -> None:
    go(engine, diamond(), selection=Selection.parse(to="left"))
    with pytest.raises(NeverComputed) as exc:
        go(engine, diamond(), selection=Selection.parse(from_="join"))
    assert str(exc.value) == (
        "step 'right' was never run with these inputs; run it first: orch run T --to right"
    )
    assert len(engine.store.list_runs()) == 1


@step
def boom(n: int = 1) -> int:
    raise ValueError(f"bad n {n}")


@step(timeout=0.2, hints={"executor": "process"})
def slow(n: int = 1) -> int:
    time.sleep(30)
    return n


@pipeline
def failing():
    boom()


@pipeline
def sleepy():
    slow()


def test_raise_for_status_names_the_failed_step(engine) -> None:
    result = go(engine, failing.build())
    assert result.status == "failed"
    with pytest.raises(StepFailed) as exc:
        result.raise_for_status()
    assert not isinstance(exc.value, StepTimeout)
    assert exc.value.step == "boom" and exc.value.run_id == result.run_id
    assert str(exc.value) == f"step 'boom' failed in run {result.run_id}: ValueError: bad n 1"
    go(engine, diamond()).raise_for_status()  # a run that succeeded raises nothing


def test_raise_for_status_of_a_timed_out_step_is_a_step_timeout(engine) -> None:
    result = go(engine, sleepy.build())
    with pytest.raises(StepTimeout) as exc:
        result.raise_for_status()
    assert str(exc.value) == (
        f"step 'slow' failed in run {result.run_id}: step 'slow' timed out after 0.2s"
    )
