"""Graph validation at the Python API level: problems the `@pipeline` syntax cannot express.

A cycle, or a reference to a step that does not exist, cannot be written with `@pipeline`
(an output handle only exists once its step was called), but `Pipeline.from_spec` builds
graphs from data, so validation must catch them, all problems at once, before anything runs.
"""

from __future__ import annotations

import pytest

from orchestrator import InvalidPipeline, step
from orchestrator.model.pipeline import Pipeline


@step
def inc(x: int) -> int:
    return x + 1


@step
def source() -> int:
    return 1


@step
def pair(a: int, b: int) -> int:
    return a + b


def test_cycle_between_two_steps() -> None:
    with pytest.raises(InvalidPipeline) as info:
        Pipeline.from_spec(
            "p",
            [
                {"name": "a", "step": inc, "inputs": {"x": "b"}},
                {"name": "b", "step": inc, "inputs": {"x": "a"}},
            ],
        )
    message = str(info.value)
    assert "cycle between steps" in message
    assert "a -> b -> a" in message or "b -> a -> b" in message
    assert info.value.pipeline == "p"


def test_longer_cycle_behind_a_valid_prefix() -> None:
    with pytest.raises(InvalidPipeline) as info:
        Pipeline.from_spec(
            "p",
            [
                {"name": "s", "step": source},
                {"name": "a", "step": pair, "inputs": {"a": "s", "b": "c"}},
                {"name": "b", "step": inc, "inputs": {"x": "a"}},
                {"name": "c", "step": inc, "inputs": {"x": "b"}},
            ],
        )
    message = str(info.value)
    rotations = ["a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c"]
    assert any(f"cycle between steps: {r}" in message for r in rotations), message


def test_step_feeding_itself_is_a_cycle() -> None:
    with pytest.raises(InvalidPipeline, match="cycle between steps: a -> a"):
        Pipeline.from_spec("p", [{"name": "a", "step": inc, "inputs": {"x": "a"}}])


def test_reference_to_an_unknown_step() -> None:
    with pytest.raises(InvalidPipeline) as info:
        Pipeline.from_spec(
            "p",
            [
                {"name": "load", "step": source},
                {"name": "a", "step": inc, "inputs": {"x": "lod"}},
            ],
        )
    message = str(info.value)
    assert "step 'a' input 'x' refers to unknown step 'lod'" in message
    assert "did you mean 'load'" in message


def test_reference_to_a_missing_output_index() -> None:
    with pytest.raises(InvalidPipeline, match=r"output 1 of step 'load', which has 1 output"):
        Pipeline.from_spec(
            "p",
            [
                {"name": "load", "step": source},
                {"name": "a", "step": inc, "inputs": {"x": "load[1]"}},
            ],
        )


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidPipeline) as info:
        Pipeline.from_spec(
            "p",
            [
                {"name": "a", "step": inc, "inputs": {"x": "b"}},
                {"name": "b", "step": inc, "inputs": {"x": "a"}},
                {"name": "c", "step": inc, "inputs": {"x": "nowhere"}},
                {"name": "d", "step": pair, "inputs": {"a": "c"}},
            ],
        )
    problems = info.value.problems
    assert len(problems) == 3, problems
    text = str(info.value)
    assert "(3 problems)" in text
    assert "cycle between steps" in text
    assert "unknown step 'nowhere'" in text
    assert "step 'd' is missing required input(s) 'b'" in text


def test_a_valid_spec_is_planned_in_dependency_order() -> None:
    graph = Pipeline.from_spec(
        "p",
        [
            {"name": "d", "step": pair, "inputs": {"a": "b", "b": "c"}},
            {"name": "c", "step": inc, "inputs": {"x": "b"}},
            {"name": "b", "step": inc, "inputs": {"x": "a"}},
            {"name": "a", "step": source},
        ],
    )
    order = graph.order
    assert order.index("a") < order.index("b") < order.index("c") < order.index("d")
    assert sorted(graph.parents("d")) == ["b", "c"]
