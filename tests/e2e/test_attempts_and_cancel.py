"""Every attempt of a step keeps its own record; a running run can be cancelled.

Real `orch` processes on a real SQLite store: a step that fails twice keeps both
attempts' errors, tracebacks and logs (`orch show`, text and `--json`); `orch cancel`
from another process stops a run whose step is still running, on the thread and the
process executor, and the run is recorded `cancelled` with that step `interrupted` and
the log it wrote until then.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from orchtest import Orch, Project, states, step_of, wait_for

FLAKY = """
from pathlib import Path

from orchestrator import pipeline, step


@step(retries=1, retry_backoff=0.05)
def flaky(marker: str = "m") -> int:
    path = Path(marker)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    print(f"output of attempt {n + 1}")
    if n < 2:
        raise ValueError(f"boom number {n + 1}")
    return n


@pipeline
def flow(marker: str = "m"):
    flaky(marker=marker)
"""

ENDLESS = """
import time

from orchestrator import pipeline, step


@step
def first() -> int:
    return 1


@step
def sleeper(x: int, started: str = "") -> int:
    open(started, "w").close()
    for i in range(6000):
        print(f"tick {i}", flush=True)
        time.sleep(0.05)
    return x


@step
def after(x: int) -> int:
    return x


@pipeline
def flow():
    after(sleeper(first()))
"""


def test_a_retried_step_keeps_each_attempts_error_traceback_and_log(
    orch: Orch, project: Project, tmp_path: Path
) -> None:
    project.write("flaky.py", FLAKY)
    marker = tmp_path / "marker"
    doc = orch.run("flaky.py:flow", "-p", f"marker={marker}", code=1)
    assert states(doc) == {"flaky": "failed"}
    shown = orch.show(doc["run_id"])
    step = step_of(shown, "flaky")
    assert step["attempts"] == 2
    tries = step["attempt_history"]
    assert [(a["attempt"], a["state"]) for a in tries] == [(1, "failed"), (2, "failed")]
    assert "boom number 1" in tries[0]["error"] and "boom number 2" in tries[1]["error"]
    assert 'raise ValueError(f"boom number {n + 1}")' in tries[0]["traceback"]
    assert tries[0]["log"] == "output of attempt 1\n"
    assert tries[1]["log"] == "output of attempt 2\n"
    assert all(a["started_at"] and a["ended_at"] for a in tries)

    text = orch("show", doc["run_id"])
    assert text.code == 0, text.describe()
    first, second = text.out.index("attempt 1: failed"), text.out.index("attempt 2: failed")
    assert first < text.out.index("boom number 1") < second
    assert text.out.index("output of attempt 1") < second


def test_a_step_that_succeeds_on_its_third_attempt_lists_three(
    orch: Orch, project: Project, tmp_path: Path
) -> None:
    project.write("flaky.py", FLAKY.replace("retries=1", "retries=2"))
    doc = orch.run("flaky.py:flow", "-p", f"marker={tmp_path / 'marker'}")
    tries = step_of(orch.show(doc["run_id"]), "flaky")["attempt_history"]
    assert [a["state"] for a in tries] == ["failed", "failed", "succeeded"]
    assert tries[2]["error"] is None and tries[2]["log"] == "output of attempt 3\n"


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_cancel_from_another_process_stops_the_run(
    orch: Orch, project: Project, tmp_path: Path, executor: str
) -> None:
    project.write("endless.py", ENDLESS)
    started = tmp_path / "started"
    proc = orch.popen(
        "run", "endless.py:flow", "--json", "-e", executor, "-p", f"sleeper.started={started}",
        log=tmp_path / "runner",
    )  # fmt: skip
    try:
        wait_for(started.exists, "the sleeper step to start", timeout=120)
        run_id = orch.runs()[0]["run_id"]
        t0 = time.monotonic()
        res = orch("cancel", run_id, "--wait", "60")
        assert res.code == 0, res.describe()
        assert res.out.strip() == f"run {run_id} is cancelled"
        assert proc.wait(timeout=60) == 1
        took = time.monotonic() - t0
    finally:
        proc.kill()
    printed = json.loads((tmp_path / "runner.out").read_text())  # what `run --json` said
    assert printed["status"] == "cancelled"
    assert states(printed) == {"first": "succeeded", "sleeper": "interrupted"}
    shown = orch.show(run_id)
    assert shown["status"] == "cancelled"
    assert states(shown) == {"first": "succeeded", "sleeper": "interrupted"}
    tries = step_of(shown, "sleeper")["attempt_history"]
    assert [a["state"] for a in tries] == ["interrupted"]
    # what the step printed before it was stopped is kept, on the step run and its attempt
    log = step_of(shown, "sleeper")["log"]
    assert log.startswith("tick 0\ntick 1\n") and tries[0]["log"] == log
    assert took < 30, took  # well before the step's five minutes
    listed = orch("runs", "--status", "cancelled", "--json")
    assert [r["run_id"] for r in listed.json["runs"]] == [run_id]


def test_cancelling_a_run_that_is_not_running_is_one_error_line(
    orch: Orch, project: Project, tmp_path: Path
) -> None:
    project.write("flaky.py", FLAKY)
    doc = orch.run("flaky.py:flow", "-p", f"marker={tmp_path / 'marker'}", code=1)
    res = orch("cancel", doc["run_id"])
    assert res.code == 2
    assert res.err == (
        f"error: run {doc['run_id']} is failed, not running: there is nothing to cancel "
        f"(resume it with `orch resume {doc['run_id']}`)\n"
    )
    missing = orch("cancel", "ffffffffffff")
    assert missing.code == 2
    assert missing.err.startswith("error: no run 'ffffffffffff'")
