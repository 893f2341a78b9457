"""Step logs (prints and `current().log`) and the three executors."""

from __future__ import annotations

import pytest
from orchtest import DEMO_STEPS, Orch, Project, states, step_of

LOG_PIPELINE = """
import sys

from orchestrator import current, pipeline, step


@step
def chatty(n: int = 3) -> int:
    print("printed by chatty", n)
    print("to stderr from chatty", file=sys.stderr)
    current().log.info("hello", x=1)
    current().log.warning("careful", step=current().step)
    return n * 2


@step
def quiet(v: int) -> int:
    return v + 1


@step
def loud_failure(v: int) -> int:
    print("about to fail")
    current().log.error("giving up", v=v)
    raise RuntimeError("loud failure")


@pipeline
def logs():
    quiet(chatty())


@pipeline
def failing_logs():
    loud_failure(chatty())
"""


@pytest.mark.parametrize("executor", ["thread", "process", "sequential"])
def test_prints_and_log_lines_are_kept_with_the_step(
    orch: Orch, project: Project, executor: str
) -> None:
    project.write("logs.py", LOG_PIPELINE)
    # `orch.run` parses stdout as one JSON document: step prints must not leak into it
    run = orch.run("logs.py:logs", "--executor", executor)
    assert run["status"] == "succeeded"
    shown = orch.show(run["run_id"])
    log = step_of(shown, "chatty")["log"]
    assert log is not None
    assert "printed by chatty 3" in log
    assert "to stderr from chatty" in log
    assert "hello" in log and "x=1" in log
    assert "careful" in log and "step='chatty'" in log
    assert "printed by chatty" not in (step_of(shown, "quiet")["log"] or "")


def test_show_prints_logs_unless_asked_not_to(orch: Orch, project: Project) -> None:
    project.write("logs.py", LOG_PIPELINE)
    run = orch.run("logs.py:logs")
    human = orch("show", run["run_id"])
    assert human.code == 0, human.describe()
    assert "printed by chatty 3" in human.out and "hello" in human.out
    hidden = orch("show", run["run_id"], "--no-logs")
    assert hidden.code == 0, hidden.describe()
    assert "printed by chatty" not in hidden.out and "hello" not in hidden.out
    assert "chatty" in hidden.out


def test_log_of_a_failed_step_is_kept(orch: Orch, project: Project) -> None:
    project.write("logs.py", LOG_PIPELINE)
    run = orch.run("logs.py:failing_logs", code=1)
    shown = orch.show(run["run_id"])
    failed = step_of(shown, "loud_failure")
    assert failed["state"] == "failed"
    assert "about to fail" in failed["log"] and "giving up" in failed["log"]
    assert "RuntimeError: loud failure" in failed["error"]


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_each_executor_runs_the_demo(orch: Orch, demo_project: Project, executor: str) -> None:
    run = orch.run("pipe.py:demo", "--executor", executor)
    assert run["status"] == "succeeded"
    assert states(run) == dict.fromkeys(DEMO_STEPS, "succeeded")
    assert orch.show(run["run_id"])["executor"] == executor


def test_results_are_shared_across_executors(orch: Orch, demo_project: Project) -> None:
    thread = orch.run("pipe.py:demo")
    process = orch.run("pipe.py:demo", "--executor", "process")
    assert states(process) == dict.fromkeys(DEMO_STEPS, "cached")
    sequential = orch.run("pipe.py:demo", "--executor", "sequential")
    assert states(sequential) == dict.fromkeys(DEMO_STEPS, "cached")

    # a new parameter computed in a forked process gives the same bytes as in a thread
    by_process = orch.run("pipe.py:demo", "--executor", "process", "--param", "n=7")
    by_thread = orch.run("pipe.py:demo", "--param", "n=7")
    assert states(by_process) == dict.fromkeys(DEMO_STEPS, "succeeded")
    assert states(by_thread) == dict.fromkeys(DEMO_STEPS, "cached")
    for name in DEMO_STEPS:
        assert step_of(by_process, name)["cache_key"] != step_of(thread, name)["cache_key"]
        assert step_of(by_thread, name)["outputs"] == step_of(by_process, name)["outputs"]
