"""A runner killed with SIGKILL takes its steps' processes with it: no orphan runs on."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
from orchtest import ENDLESS_PIPELINE, Orch, Project, process_gone, wait_for


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
        wait_for(
            lambda: process_gone(pid), f"step process {pid} to die with its runner", timeout=10
        )
    finally:
        runner.kill()
        if pid and not process_gone(pid):
            os.kill(pid, signal.SIGKILL)  # the orphan this test is about
    res = orch("runs")
    assert res.code == 0, res.describe()
    assert "interrupted" in res.out
