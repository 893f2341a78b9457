"""Conditional step calls: the build-time checks, `verdict` on real values, the run state's
status, and the engine on a real SQLite store and artifact folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator import InvalidPipeline, pipeline, step, when
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.conditions import ConditionFailed, by_condition, verdict
from orchestrator.engine.loop import RunResult
from orchestrator.engine.state import RunState
from orchestrator.model.conditions import Condition
from orchestrator.state import RunStatus, StepState


@step
def score(r2: float = 0.5) -> dict:
    return {"r2": r2}


@step
def good(metrics: dict, bar: float = 0.8) -> bool:
    return metrics["r2"] > bar


@step(kind="deploy")
def ship(metrics: dict) -> str:
    return f"shipped {metrics['r2']}"


@step
def announce(msg: str) -> str:
    return msg + "!"


@step
def tally(metrics: dict) -> float:
    return metrics["r2"]


@pipeline
def gated(r2: float = 0.5):
    m = score(r2=r2)
    announce(ship(m, _when=good(m)))
    tally(m)


@pipeline
def predicated(r2: float = 0.5, bar: float = 0.3):
    m = score(r2=r2)
    ship.when(when(m, lambda v: v["r2"] > bar, label="r2 > bar"))(m)


def states(result: RunResult) -> dict[str, str]:
    return {s.name: s.state for s in result.steps}


def summary(result: RunResult, name: str) -> str:
    rep = result.step(name)
    assert rep is not None
    return str((rep.reason or {}).get("summary"))


# -- build time ---------------------------------------------------------------------------


def test_a_condition_is_an_edge_of_the_graph_and_a_condition_once_built() -> None:
    g = gated.build({})
    assert "good" in g.parents("ship")
    cond = g.nodes["ship"].condition
    assert isinstance(cond, Condition) and cond.source.node == "good" and cond.predicate is None


def test_a_non_bool_output_as_a_condition_is_one_problem_naming_the_step() -> None:
    @pipeline
    def wrong():
        m = score()
        ship(m, _when=m)

    with pytest.raises(InvalidPipeline) as exc:
        wrong.build({})
    assert exc.value.problems == [
        "step 'ship' condition 'score' is typed dict, not bool; declare `-> bool` or pass "
        "a predicate: when(score, lambda value: ...)"
    ]


def test_a_plain_value_or_a_non_callable_predicate_is_refused() -> None:
    @pipeline
    def wrong():
        m = score()
        ship(m, _when=0.8)
        ship.named("ship_b")(m, _when=when(m, "r2 > 0.8"))
        ship.named("ship_c")(m, _when=when(m, lambda: True))

    with pytest.raises(InvalidPipeline) as exc:
        wrong.build({})
    assert exc.value.problems == [
        "step 'ship' condition must be a bool output of an upstream step or "
        "`when(output, predicate)`, got 0.8 (float)",
        "step 'ship_b' condition on 'score': the predicate must be callable, got 'r2 > 0.8' (str)",
        "step 'ship_c' condition on 'score': the predicate must take one argument "
        "(the output's value)",
    ]


def test_outside_a_pipeline_a_conditional_call_is_the_plain_function() -> None:
    assert ship({"r2": 0.1}, _when=True) == "shipped 0.1"


# -- verdict ------------------------------------------------------------------------------


def _refs(tmp_path: Path, value: object) -> tuple[ArtifactStore, dict]:
    artifacts = ArtifactStore(tmp_path / "a")
    return artifacts, {"good": [artifacts.put(value)], "score": [artifacts.put({"r2": 0.5})]}


def test_verdict_reads_the_store_when_the_value_is_not_in_memory(tmp_path: Path) -> None:
    artifacts, outputs = _refs(tmp_path, False)
    node = gated.build({}).nodes["ship"]
    reason = verdict(node, outputs, {}, artifacts.get)
    assert reason == {
        "cache": "skipped",
        "summary": "condition 'good' is false",
        "skipped_by": "condition",
    }
    assert verdict(node, outputs, {outputs["good"][0].hash: True}, artifacts.get) is None


def test_a_predicate_reason_carries_the_value_it_read(tmp_path: Path) -> None:
    artifacts, outputs = _refs(tmp_path, True)
    node = predicated.build({"bar": 0.7}).nodes["ship"]
    reason = verdict(node, outputs, {}, artifacts.get)
    assert reason is not None and reason["details"] == [
        "condition 'r2 > bar' on 'score' is false",
        "value of 'score': {'r2': 0.5}",
    ]
    assert verdict(predicated.build({"bar": 0.2}).nodes["ship"], outputs, {}, artifacts.get) is None


def test_a_predicate_that_gives_no_bool_or_raises_is_one_line(tmp_path: Path) -> None:
    artifacts, outputs = _refs(tmp_path, True)
    node = predicated.build({}).nodes["ship"]
    node.condition = when(node.condition.source, lambda v: v["r2"], label="raw")
    with pytest.raises(ConditionFailed) as exc:
        verdict(node, outputs, {}, artifacts.get)
    assert str(exc.value) == "step 'ship': condition 'raw' on 'score' gave 0.5 (float), not a bool"
    node.condition = when(node.condition.source, lambda v: v["auc"])
    with pytest.raises(ConditionFailed) as exc:
        verdict(node, outputs, {}, artifacts.get)
    assert str(exc.value) == "step 'ship': condition '<lambda>' on 'score' raised KeyError: 'auc'"
    node.condition = when(node.condition.source, lambda v: np.float64(v["r2"]) > 0.1)
    assert verdict(node, outputs, {}, artifacts.get) is None  # a numpy bool is a bool


# -- run state ----------------------------------------------------------------------------


def test_a_run_whose_only_unfinished_steps_are_condition_skipped_succeeds() -> None:
    state = RunState(gated.build({}))
    for name in ("score", "good", "tally"):
        state.report(name, StepState.SUCCEEDED)
    state.skip("ship", "ship", {"summary": "condition 'good' is false", "skipped_by": "condition"})
    assert state.status() == RunStatus.SUCCEEDED
    state.skip("announce", "tally")  # skipped because an upstream step failed
    assert state.status() == RunStatus.FAILED
    assert by_condition(state.reports["ship"].reason)
    assert not by_condition(state.reports["announce"].reason)


# -- the engine ---------------------------------------------------------------------------


@pytest.mark.parametrize("executor", ["sequential", "thread"])
def test_false_skips_the_step_and_its_descendants_true_runs_them(engine, executor) -> None:
    low = engine.run(gated.build({"r2": 0.5}), target="T", executor=executor)
    assert low.status == RunStatus.SUCCEEDED
    assert states(low) == {
        "score": "succeeded",
        "good": "succeeded",
        "tally": "succeeded",
        "ship": "skipped",
        "announce": "skipped",
    }
    assert summary(low, "ship") == "condition 'good' is false"
    assert summary(low, "announce") == "upstream step 'ship' was skipped by its condition"
    rows = {s["name"]: s for s in engine.store.step_runs(low.run_id)}
    assert rows["ship"]["state"] == "skipped" and rows["ship"]["error"] is None
    assert engine.store.get_run(low.run_id)["status"] == "succeeded"
    high = engine.run(gated.build({"r2": 0.9}), target="T", executor=executor)
    assert states(high)["ship"] == states(high)["announce"] == "succeeded"
    again = engine.run(gated.build({"r2": 0.5}), target="T", executor=executor)
    assert states(again)["good"] == "cached" and states(again)["ship"] == "skipped"


def test_the_predicate_code_is_part_of_the_step_key(engine) -> None:
    first = engine.run(predicated.build({"bar": 0.3}), target="T")
    same = engine.run(predicated.build({"bar": 0.3}), target="T")
    other = engine.run(predicated.build({"bar": 0.4}), target="T")
    assert states(same)["ship"] == "cached"
    assert first.step("ship").cache_key == same.step("ship").cache_key
    assert states(other)["ship"] == "succeeded"  # the closure's value changed the key
    assert "code changed: condition" in summary(other, "ship")


def test_a_condition_that_cannot_be_decided_fails_the_step_and_the_run(engine) -> None:
    @pipeline
    def broken():
        m = score()
        announce(ship(m, _when=when(m, lambda v: v["auc"] > 0.5)))

    result = engine.run(broken.build({}), target="T")
    assert result.status == RunStatus.FAILED
    assert result.step("ship").error == (
        "step 'ship': condition '<lambda>' on 'score' raised KeyError: 'auc'"
    )
    assert summary(result, "announce") == "upstream step 'ship' failed"
