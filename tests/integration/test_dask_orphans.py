"""A LocalCluster started by a runner dies with the runner, even one killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from orchtest import ENDLESS_PIPELINE, Orch, Project, process_gone, wait_for  # noqa: E402


def test_local_cluster_workers_die_with_their_killed_runner(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    orch = Orch(tmp_path / "orch-home", project.root)
    orch.env.pop("ORCH_DASK_ADDRESS", None)  # a LocalCluster of the runner's own
    pidfile = tmp_path / "worker.pid"
    project.write("spin.py", ENDLESS_PIPELINE.format(pidfile=str(pidfile)))
    runner = orch.popen("run", "spin.py:spinning", "--executor", "dask", log=tmp_path / "r")
    cluster: list[psutil.Process] = []
    try:
        pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), "the step", 120))
        cluster = psutil.Process(runner.pid).children(recursive=True)
        assert pid in {p.pid for p in cluster}  # the step runs in a worker of the runner's
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
        for proc in cluster:
            wait_for(lambda p=proc: process_gone(p.pid), f"cluster process {proc.pid} to die", 30)
    finally:
        runner.kill()
        for proc in cluster:  # the orphans this test is about
            if not process_gone(proc.pid):
                proc.kill()
