"""`RunState`: ready, finished and skipped bookkeeping, pure and without executors."""

from __future__ import annotations

from shapes import diamond

from orchestrator.artifacts.store import ArtifactRef
from orchestrator.engine.state import RunState
from orchestrator.state import RunStatus, StepState


def ref(name: str) -> list[ArtifactRef]:
    return [ArtifactRef(f"{name:0<32}", "json", "int", 1)]


def drain(state: RunState) -> list[str]:
    out = []
    while state.queue:
        out.append(state.queue.pop())
    return out


def test_only_roots_are_ready_at_first_and_children_when_all_parents_finish() -> None:
    state = RunState(diamond())
    assert drain(state) == ["load"]
    state.finish("load", ref("load"))
    assert sorted(drain(state)) == ["left", "right", "side"]
    state.finish("left", ref("left"))
    assert drain(state) == []  # join still waits for right
    state.finish("right", ref("right"))
    assert drain(state) == ["join"]
    assert state.inputs("join") == {"a": ref("left")[0], "b": ref("right")[0]}


def test_finish_says_which_parents_have_no_child_left_to_feed() -> None:
    state = RunState(diamond())
    state.finish("load", ref("load"))
    assert state.finish("left", ref("left")) == []
    assert state.finish("right", ref("right")) == []
    assert state.finish("side", ref("side")) == ["load"]  # its last child
    assert state.finish("join", ref("join")) == ["left", "right"]


def test_a_failure_skips_exactly_the_steps_downstream_not_yet_started() -> None:
    state = RunState(diamond())
    state.finish("load", ref("load"))
    drain(state)
    state.report("right", StepState.RUNNING)
    state.report("left", StepState.FAILED)
    assert sorted(state.to_skip("left")) == ["join", "report"]
    rep = state.skip("join", "left")
    assert rep.state == StepState.SKIPPED
    assert rep.reason == {"cache": "skipped", "summary": "upstream step 'left' failed"}
    assert state.waiting["join"] == -1
    state.finish("right", ref("right"))
    assert drain(state) == []  # a skipped step never becomes ready


def test_status_is_succeeded_only_when_every_step_finished() -> None:
    state = RunState(diamond())
    for name in state.order:
        state.report(name, StepState.CACHED if name == "load" else StepState.SUCCEEDED)
    assert state.status() == RunStatus.SUCCEEDED
    state.report("side", StepState.FAILED)
    assert state.status() == RunStatus.FAILED
    assert [r.name for r in state.steps()] == state.order


def test_a_partial_run_only_counts_its_members() -> None:
    state = RunState(diamond(), {"load", "left", "right", "join"})
    assert state.order == [n for n in diamond().order if n in state.order]
    assert "report" not in state.waiting and "side" not in state.waiting
    assert drain(state) == ["load"]
    state.finish("load", ref("load"))
    assert sorted(drain(state)) == ["left", "right"]  # side is not part of this run
    state.finish("left", ref("left"))
    assert state.finish("right", ref("right")) == ["load"]
    assert drain(state) == ["join"]
    assert state.finish("join", ref("join")) == ["left", "right"]
    assert drain(state) == []  # report is not part of this run
