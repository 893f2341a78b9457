"""A runner killed with SIGKILL in the middle of a run loses no finished step.

Pipeline `a -> b -> c -> d` where `c` touches a "started" marker and then waits for a
"gate" file (or about 30 s). The test kills the runner while `c` waits, then checks that
the run is reported `interrupted`, and that a plain re-run and `orch resume` reuse `a`
and `b` and compute `c` and `d`.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from orchtest import Orch, Project, states, step_of, wait_for

CRASH_PIPELINE = """
import os
import signal
import time
from pathlib import Path

from orchestrator import pipeline, step

STARTED = Path({started!r})
GATE = Path({gate!r})
SELF_KILL = Path({self_kill!r})


@step
def a() -> int:
    return 1


@step
def b(x: int) -> int:
    return x + 1


@step
def c(x: int) -> int:
    if SELF_KILL.exists():  # the runner dies abruptly as soon as c starts (think OOM killer)
        SELF_KILL.unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    STARTED.touch()
    deadline = time.monotonic() + 30
    while not GATE.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return x * 10


@step
def d(x: int) -> int:
    return x + 5


@pipeline
def crash():
    d(c(b(a())))
"""


@pytest.fixture
def crash_project(project: Project, tmp_path: Path) -> Project:
    project.write(
        "crash.py",
        CRASH_PIPELINE.format(
            started=str(tmp_path / "c-started"),
            gate=str(tmp_path / "gate"),
            self_kill=str(tmp_path / "self-kill"),
        ),
    )
    return project


def _signal_while_c_runs(
    orch: Orch, tmp_path: Path, sig: signal.Signals, *extra: str
) -> tuple[str, int]:
    """Start `orch run crash.py:crash`; send `sig` once b is recorded and c is waiting.

    Opens the gate right after the signal (so a runner that waits for its running steps
    can finish), and returns the run id and the runner's exit code.
    """
    proc = orch.popen("run", "crash.py:crash", "--json", *extra, log=tmp_path / "runner")
    try:

        def started() -> bool:
            assert proc.poll() is None, (tmp_path / "runner.err").read_text()
            return (tmp_path / "c-started").exists()

        wait_for(started, "step c to start")

        def run_id() -> str | None:
            running = [r for r in orch.runs() if r["status"] == "running"]
            return running[0]["run_id"] if running else None

        rid: str = wait_for(run_id, "the run to be listed as running", interval=0.1)

        def b_recorded() -> bool:
            st = states(orch.show(rid))
            return st.get("b") == "succeeded" and st.get("c") == "running"

        wait_for(b_recorded, "b succeeded and c running in `orch show`", interval=0.1)
        os.kill(proc.pid, sig)
        (tmp_path / "gate").touch()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rid, code


def _kill_while_c_runs(orch: Orch, tmp_path: Path, *extra: str) -> str:
    rid, code = _signal_while_c_runs(orch, tmp_path, signal.SIGKILL, *extra)
    assert code == -signal.SIGKILL
    return rid


def test_sigkilled_run_is_interrupted_and_a_rerun_reuses_finished_steps(
    orch: Orch, crash_project: Project, tmp_path: Path
) -> None:
    rid = _kill_while_c_runs(orch, tmp_path)

    listed = {r["run_id"]: r for r in orch.runs()}
    assert listed[rid]["status"] == "interrupted"
    shown = orch.show(rid)
    assert shown["status"] == "interrupted"
    assert shown["ended_at"] is not None
    st = states(shown)
    assert st["a"] == "succeeded" and st["b"] == "succeeded"
    assert st["c"] == "interrupted"
    assert st.get("d") in (None, "pending")

    rerun = orch.run("crash.py:crash")
    assert rerun["status"] == "succeeded"
    assert states(rerun) == {"a": "cached", "b": "cached", "c": "succeeded", "d": "succeeded"}
    assert rid in step_of(rerun, "b")["reason"]


def test_resume_of_a_killed_run_reuses_its_finished_steps(
    orch: Orch, crash_project: Project, tmp_path: Path
) -> None:
    rid = _kill_while_c_runs(orch, tmp_path, "--executor", "process")

    res = orch("resume", rid[:8], "--json")
    assert res.code == 0, res.describe()
    resumed = res.json
    assert resumed["status"] == "succeeded"
    assert resumed["run_id"] != rid
    assert states(resumed) == {"a": "cached", "b": "cached", "c": "succeeded", "d": "succeeded"}

    shown = orch.show(resumed["run_id"])
    assert shown["resumed_from"] == rid
    assert shown["executor"] == "process"  # resume keeps the run's executor
    assert step_of(shown, "a")["reason"]["from_run"] == rid

    # the killed run itself stays what it was
    assert {r["run_id"]: r["status"] for r in orch.runs()}[rid] == "interrupted"


def test_ctrl_c_interrupts_the_run_and_says_how_to_resume(
    orch: Orch, crash_project: Project, tmp_path: Path
) -> None:
    rid, code = _signal_while_c_runs(orch, tmp_path, signal.SIGINT)
    assert code == 130
    err = (tmp_path / "runner.err").read_text()
    assert "Traceback" not in err
    assert "orch resume" in err
    shown = orch.show(rid)
    assert shown["status"] == "interrupted"
    assert states(shown)["b"] == "succeeded" and states(shown)["c"] == "interrupted"

    res = orch("resume", rid, "--json")
    assert res.code == 0, res.describe()
    assert states(res.json) == {"a": "cached", "b": "cached", "c": "succeeded", "d": "succeeded"}


@pytest.mark.parametrize("executor", ["thread", "sequential"])
def test_abrupt_death_as_a_step_starts_keeps_its_finished_parents(
    orch: Orch, crash_project: Project, tmp_path: Path, executor: str
) -> None:
    """The runner dies the instant `c` starts: `b` (finished before) must be durable.

    "Each round's changes are committed before the next round starts any step", so a
    step may only start once its parents' completion is in the store.
    """
    (tmp_path / "self-kill").touch()
    res = orch("run", "crash.py:crash", "--json", "--executor", executor)
    assert res.code == -signal.SIGKILL, res.describe()
    assert not (tmp_path / "self-kill").exists()

    (tmp_path / "gate").touch()
    rerun = orch.run("crash.py:crash")
    assert states(rerun) == {"a": "cached", "b": "cached", "c": "succeeded", "d": "succeeded"}


FAILING_PIPELINE = """
from pathlib import Path

from orchestrator import pipeline, step

GATE = Path({gate!r})
CALLS = Path({calls!r})


def _count(name: str) -> None:
    with CALLS.open("a") as f:
        f.write(name + "\\n")


@step
def a() -> int:
    _count("a")
    return 1


@step(cache=False)
def b(x: int) -> int:
    _count("b")
    return x + 1


@step
def c(x: int) -> int:
    _count("c")
    if not GATE.exists():
        raise RuntimeError("the gate is closed")
    return x * 10


@step
def d(x: int) -> int:
    _count("d")
    return x + 5


@pipeline
def gated():
    d(c(b(a())))
"""


@pytest.fixture
def gated(project: Project, tmp_path: Path) -> Path:
    """`gated.py:gated`: a -> b (cache=False) -> c (fails until the gate exists) -> d.

    Returns the file where every step appends its name when it runs.
    """
    calls = tmp_path / "calls.txt"
    project.write(
        "gated.py", FAILING_PIPELINE.format(gate=str(tmp_path / "gate"), calls=str(calls))
    )
    return calls


def test_resume_of_a_failed_run_reuses_even_uncached_steps(
    orch: Orch, gated: Path, tmp_path: Path
) -> None:
    failed = orch.run("gated.py:gated", code=1)
    assert states(failed) == {"a": "succeeded", "b": "succeeded", "c": "failed", "d": "skipped"}
    assert "the gate is closed" in step_of(failed, "c")["error"]

    (tmp_path / "gate").touch()
    res = orch("resume", failed["run_id"], "--json")
    assert res.code == 0, res.describe()
    assert states(res.json) == {"a": "cached", "b": "cached", "c": "succeeded", "d": "succeeded"}
    assert gated.read_text().split() == ["a", "b", "c", "c", "d"]
    assert orch.show(res.json["run_id"])["resumed_from"] == failed["run_id"]

    # a plain run (not a resume) always runs the cache=False step again
    plain = orch.run("gated.py:gated")
    assert states(plain) == {"a": "cached", "b": "succeeded", "c": "cached", "d": "cached"}
    assert "cache=False" in step_of(plain, "b")["reason"]
    assert gated.read_text().split() == ["a", "b", "c", "c", "d", "b"]


def test_resume_from_another_directory(orch: Orch, gated: Path, tmp_path: Path) -> None:
    """The run was started as `orch run gated.py:gated` in the project folder."""
    failed = orch.run("gated.py:gated", code=1)
    (tmp_path / "gate").touch()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = orch("resume", failed["run_id"], "--json", cwd=elsewhere)
    assert res.code == 0, res.describe()
    assert states(res.json) == {"a": "cached", "b": "cached", "c": "succeeded", "d": "succeeded"}


def test_resume_of_unknown_run_is_a_clean_error(orch: Orch, project: Project) -> None:
    res = orch("resume", "doesnotexist")
    assert res.code == 2, res.describe()
    assert "no run 'doesnotexist'" in res.err
    assert "Traceback" not in res.err
