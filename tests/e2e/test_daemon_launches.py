"""How the daemon starts runs: concurrency policies, and recovery from a daemon that died.

Runs start as child processes recorded in the `launches` table with a run id fixed at
claim time. A schedule with `concurrency="queue"` runs caught-up ticks one after another;
`allow` lets them overlap. A tick claimed by a daemon that died before starting it is
started by the next daemon, once, under the id fixed at claim time.
"""

from __future__ import annotations

import datetime as dt
import json
import socket

import psutil
from orchtest import Orch, Project

from orchestrator.store.metadata import MetadataStore
from orchestrator.triggers.daemon import launch_id

FLOW = """
import time
from orchestrator import Schedule, pipeline, step

@step(cache=False)
def slow(scheduled_time: str = "") -> str:
    time.sleep(1.0)
    return scheduled_time

@pipeline
def job(scheduled_time: str = ""):
    slow(scheduled_time=scheduled_time)

every15 = Schedule(name="every15", pipeline="job", cron="*/15 * * * *", catchup="all",
                   concurrency="{concurrency}")
"""


def _once(orch: Orch, now: str) -> str:
    res = orch("daemon", "flow.py", "--once", "--now", now)
    assert res.code == 0, res.describe()
    assert "Traceback" not in res.err, res.describe()
    return res.err


def _scheduled_runs(orch: Orch) -> list[dict]:
    runs = [r for r in orch.runs() if (r["trigger"] or {}).get("kind") == "schedule"]
    assert all(r["status"] == "succeeded" for r in runs), runs
    return sorted(runs, key=lambda r: r["trigger"]["scheduled_time"])


def _times(run: dict) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromisoformat(run["started_at"]), dt.datetime.fromisoformat(run["ended_at"])


def test_queue_runs_caught_up_ticks_one_after_another(orch: Orch, project: Project) -> None:
    project.write("flow.py", FLOW.format(concurrency="queue"))
    _once(orch, "2026-11-23T10:00:05+00:00")
    log = _once(orch, "2026-11-23T10:45:05+00:00")  # 10:15, 10:30, 10:45 are due
    assert log.count("queued") == 2, log
    runs = _scheduled_runs(orch)
    assert [r["trigger"]["scheduled_time"][11:16] for r in runs] == [
        "10:00", "10:15", "10:30", "10:45",
    ]  # fmt: skip
    caught_up = runs[1:]
    for before, after in zip(caught_up, caught_up[1:], strict=False):
        assert _times(before)[1] <= _times(after)[0], (before, after)  # no overlap, in order
    for run in runs:  # the run id was fixed when the tick was claimed
        assert run["run_id"] == launch_id("tick", run["trigger"]["run_key"])


def test_allow_starts_caught_up_ticks_together(orch: Orch, project: Project) -> None:
    project.write("flow.py", FLOW.format(concurrency="allow"))
    _once(orch, "2026-11-23T10:00:05+00:00")
    log = _once(orch, "2026-11-23T10:45:05+00:00")
    assert "queued" not in log
    runs = _scheduled_runs(orch)[1:]
    assert len(runs) == 3
    starts = sorted(_times(r)[0] for r in runs)
    ends = sorted(_times(r)[1] for r in runs)
    assert starts[-1] < ends[0], runs  # all three were started before the first ended


def _dead_pid() -> int:
    pid = 999_999
    while psutil.pid_exists(pid):
        pid -= 1
    return pid


def test_a_tick_claimed_by_a_dead_daemon_is_started_once(orch: Orch, project: Project) -> None:
    project.write("flow.py", FLOW.format(concurrency="skip"))
    assert orch("runs").code == 0  # creates the store
    # A daemon claimed the 10:00 tick and died before starting its run.
    key = "every15@2026-11-23T10:00:00+00:00"
    run_id = launch_id("tick", key)
    trigger = {"kind": "schedule", "schedule": "every15", "run_key": key,
               "scheduled_time": "2026-11-23T10:00:00+00:00"}  # fmt: skip
    args = ["run", f"{project.path('flow.py')}:job", "--json",
            "--param", 'scheduled_time="2026-11-23T10:00:00+00:00"',
            "--trigger", json.dumps(trigger)]  # fmt: skip
    store = MetadataStore(f"sqlite:///{orch.db}")
    try:
        dead = f"{socket.gethostname()}:{_dead_pid()}"
        assert store.claim_launch(
            [("tick", key)], dead, run_id=run_id, source="schedule:every15", args=args
        )
    finally:
        store.close()

    log = _once(orch, "2026-11-23T10:00:30+00:00")
    assert f"run_id={run_id}" in log
    (run,) = _scheduled_runs(orch)  # the claimed tick's run started once, under its id
    assert run["run_id"] == run_id
    assert run["trigger"]["run_key"] == key

    _once(orch, "2026-11-23T10:00:40+00:00")
    assert len(_scheduled_runs(orch)) == 1  # and never again


def test_a_run_id_cannot_start_twice(orch: Orch, project: Project) -> None:
    project.write("flow.py", FLOW.format(concurrency="skip"))
    first = orch("run", "flow.py:job", "--run-id", "abc123abc123", "--json")
    assert first.code == 0, first.describe()
    again = orch("run", "flow.py:job", "--run-id", "abc123abc123", "--json")
    assert again.code != 0
    assert "run abc123abc123 already exists" in again.err and "Traceback" not in again.err


SPARE_FLOW = """
import psutil
from pathlib import Path
from orchestrator import EventTrigger, pipeline, step

@step(cache=False)
def where(out: str = "") -> str:
    Path(out).write_text(" ".join(psutil.Process().cmdline()) + "\\n" + "VERSION")
    return out

@pipeline
def job(out: str = ""):
    where(out=out)

go = EventTrigger(name="go", event="go", pipeline="job")
"""


def test_a_run_starts_in_the_spare_process_with_the_code_on_disk(
    orch: Orch, project: Project, tmp_path
) -> None:
    from orchtest import wait_for

    project.write("flow.py", SPARE_FLOW.replace("VERSION", "v1"))
    proc = orch.popen("daemon", "flow.py", log=tmp_path / "daemon")
    try:
        # the spare is started after the daemon's first pass
        wait_for(lambda: _spare_of(proc.pid), "the daemon's spare process", timeout=60)
        # edited after the daemon (and its spare) started: the run must use this code
        project.write("flow.py", SPARE_FLOW.replace("VERSION", "v2"))
        out = project.path("where.txt")
        assert orch("event", "emit", "go", "--data", f"out={out}").code == 0
        wait_for(out.exists, "the triggered run", timeout=60)
        cmdline, version = out.read_text().splitlines()
        assert "orchestrator.triggers.launchpad" in cmdline, cmdline
        assert version == "v2"
        spare = wait_for(lambda: _spare_of(proc.pid), "a new spare", timeout=60)
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: not psutil.pid_exists(spare), "the spare to leave with the daemon", 10)
    (run,) = orch.runs()
    assert run["status"] == "succeeded" and run["trigger"]["event"] == "go"


def _spare_of(pid: int) -> int | None:
    """The pid of the daemon's idle spare process, if it has one."""
    try:
        for child in psutil.Process(pid).children():
            if (
                child.status() != psutil.STATUS_ZOMBIE
                and "orchestrator.triggers.launchpad" in " ".join(child.cmdline())
            ):
                return child.pid
    except psutil.Error:
        pass
    return None
