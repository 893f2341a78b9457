"""Live step logs: lines reach the console while the step still runs; `orch logs --follow`.

The step logs a line, then waits for a file that the test creates only once it has seen
that line: the line can only have been seen live, while the run was still going.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from orchtest import Orch, Project, wait_for

WAITER = """
import time
from pathlib import Path

from orchestrator import current, pipeline, step


@step
def warmup() -> int:
    print("warming up")
    return 1


@step
def waiter(x: int, go: str = "") -> int:
    current().log.info("waiting for the go file", path=go)
    deadline = time.monotonic() + 120
    while not Path(go).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no go file")
        time.sleep(0.05)
    print("got the go file")
    return x + 1


@pipeline
def flow():
    waiter(warmup())
"""


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_step_log_lines_reach_stderr_while_the_step_runs(
    orch: Orch, project: Project, tmp_path: Path, executor: str
) -> None:
    project.write("wait.py", WAITER)
    go = tmp_path / "go"
    log = tmp_path / "runner"
    proc = orch.popen(
        "run", "wait.py:flow", "--json", "-e", executor, "-p", f"waiter.go={go}", log=log
    )
    try:
        err = log.with_suffix(".err")
        wait_for(
            lambda: "waiter | " in _text(err) and "waiting for the go file" in _text(err),
            "the step's log line on stderr",
            timeout=120,
        )
        assert proc.poll() is None, _text(err)  # the step is still waiting: the line is live
        assert "warmup | warming up" in _text(err)
        go.touch()
        assert proc.wait(timeout=120) == 0, _text(err)
    finally:
        proc.kill()
    assert "waiter | got the go file" in _text(err)
    assert '"status": "succeeded"' in _text(log.with_suffix(".out"))  # stdout: the JSON only
    assert "waiter |" not in _text(log.with_suffix(".out"))


def test_logs_follow_streams_lines_and_ends_with_the_run(
    orch: Orch, project: Project, tmp_path: Path
) -> None:
    project.write("wait.py", WAITER)
    go = tmp_path / "go"
    run_id = "f011051ab123"
    runner = orch.popen(
        "run", "wait.py:flow", "--run-id", run_id, "-p", f"waiter.go={go}", log=tmp_path / "run"
    )
    follow_log = tmp_path / "follow"
    try:
        wait_for(lambda: orch("runs", "--json").json["runs"], "the run to be recorded")
        follower = orch.popen("logs", run_id, "--follow", log=follow_log)
        out = follow_log.with_suffix(".out")
        wait_for(lambda: "waiting for the go file" in _text(out), "the live line", timeout=120)
        assert follower.poll() is None and runner.poll() is None
        assert "warmup | warming up" in _text(out)
        go.touch()
        assert runner.wait(timeout=120) == 0, _text(tmp_path / "run.err")
        assert follower.wait(timeout=60) == 0, _text(follow_log.with_suffix(".err"))
    finally:
        runner.kill()
    lines = _text(out).splitlines()
    assert lines.count("waiter | got the go file") == 1, lines
    assert sum("waiting for the go file" in line for line in lines) == 1, lines

    one = orch("logs", run_id[:6], "waiter")
    assert one.code == 0, one.describe()
    assert "got the go file" in one.out and "waiter |" not in one.out
    assert "warming up" not in one.out
    assert not (orch.home / "logs" / run_id).exists()  # live files go once the run ends


def test_logs_of_an_unknown_step_name_it(orch: Orch, project: Project, tmp_path: Path) -> None:
    project.write("wait.py", WAITER)
    (tmp_path / "go").touch()
    run = orch.run("wait.py:flow", "-p", f"waiter.go={tmp_path / 'go'}")
    res = orch("logs", run["run_id"], "waitr")
    assert res.code == 2
    assert f"error: run {run['run_id']} has no step 'waitr' (did you mean 'waiter'?)" in res.err
    assert "Traceback" not in res.err
