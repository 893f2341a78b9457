"""A runner killed with SIGKILL takes its steps' processes with it: no orphan runs on."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
from orchtest import Orch, Project, wait_for

ENDLESS_PIPELINE = """
import os
from pathlib import Path

from orchestrator import pipeline, step


@step
def endless() -> int:
    Path({pidfile!r}).write_text(str(os.getpid()))
    while True:
        pass


@pipeline
def spinning():
    endless()
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_step_process_dies_with_its_killed_runner(
    orch: Orch, project: Project, tmp_path: Path
) -> None:
    pidfile = tmp_path / "step.pid"
    project.write("endless.py", ENDLESS_PIPELINE.format(pidfile=str(pidfile)))
    runner = orch.popen("run", "endless.py:spinning", "--executor", "process", log=tmp_path / "r")
    pid = 0
    try:
        pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), "the step to start"))
        assert pid != runner.pid and psutil.pid_exists(pid)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
        wait_for(lambda: _gone(pid), f"step process {pid} to die with its runner", timeout=10)
    finally:
        runner.kill()
        if pid and not _gone(pid):
            os.kill(pid, signal.SIGKILL)  # the orphan this test is about
    res = orch("runs")
    assert res.code == 0, res.describe()
    assert "interrupted" in res.out
