"""A Docker step's container does not outlive its runner killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from orchtest import Orch, Project, wait_for

from tests.integration.test_docker import docker_image, orch, project  # noqa: F401 - fixtures

SPINNING = """
from orchestrator import pipeline, step


@step
def orphan_spinner() -> int:
    while True:
        pass


@pipeline
def spinning():
    orphan_spinner()
"""


def _containers(step: str, *, running: bool = False) -> list[str]:
    args = ["docker", "ps", "-q" if running else "-aq"]
    out = subprocess.run(
        [*args, "--filter", f"label=orchestrator.model.step={step}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def test_a_container_is_removed_when_its_runner_is_killed(
    orch: Orch,  # noqa: F811 - the fixture imported above
    project: Project,  # noqa: F811
    tmp_path: Path,
) -> None:
    project.write("spin.py", SPINNING)
    runner = orch.popen("run", "spin.py:spinning", "--executor", "docker", log=tmp_path / "r")
    started: list[str] = []
    try:
        started = wait_for(
            lambda: _containers("orphan_spinner", running=True), "the container to start", 120
        )
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
        killed_at = time.monotonic()
        wait_for(lambda: not _containers("orphan_spinner"), "the container to be removed", 30)
        assert time.monotonic() - killed_at < 30
    finally:
        runner.kill()
        left = _containers("orphan_spinner")
        if left:  # the orphan this test is about
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
    assert started
