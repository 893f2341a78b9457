"""The schedule daemon through the CLI, with an injected clock (`orch daemon --once --now`)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from orchtest import Orch, Project

FLOW = """
from orchestrator import pipeline, step
from orchestrator.triggers.schedules import Schedule

@step
def stamp(scheduled_time: str = "") -> str:
    return scheduled_time

@pipeline
def job(scheduled_time: str = ""):
    stamp(scheduled_time=scheduled_time)

every15 = Schedule(name="every15", pipeline="job", cron="*/15 * * * *", catchup="{catchup}",
                   max_catchup={cap})
"""


def _flow(project: Project, catchup: str = "all", cap: int = 100) -> None:
    project.write("flow.py", FLOW.format(catchup=catchup, cap=cap))


def _daemon(orch: Orch, now: str) -> None:
    res = orch("daemon", "flow.py", "--once", "--now", now)
    assert res.code == 0, res.describe()
    assert "Traceback" not in res.err


def _ticks(orch: Orch) -> list[str]:
    """Scheduled times of the runs the daemon started, oldest first."""
    runs = [r for r in orch.runs() if (r["trigger"] or {}).get("kind") == "schedule"]
    assert all(r["status"] == "succeeded" for r in runs), runs
    return sorted(r["trigger"]["scheduled_time"][11:16] for r in runs)


def test_a_due_tick_runs_once_and_the_run_records_it(orch: Orch, project: Project) -> None:
    _flow(project)
    _daemon(orch, "2026-11-23T10:00:10+00:00")
    _daemon(orch, "2026-11-23T10:00:20+00:00")  # same tick again: nothing new
    assert _ticks(orch) == ["10:00"]
    run = orch.runs()[0]
    assert run["params"]["scheduled_time"] == "2026-11-23T10:00:00+00:00"
    shown = orch("show", run["run_id"]).out
    assert "trigger: schedule (schedule every15, run_key every15@2026-11-23T10:00:00+00:00" in shown


@pytest.mark.parametrize(
    ("catchup", "cap", "expected"),
    [
        ("skip", 100, ["10:00", "10:45"]),
        ("latest", 100, ["10:00", "10:45"]),
        ("all", 100, ["10:00", "10:15", "10:30", "10:45"]),
        ("all", 2, ["10:00", "10:30", "10:45"]),
    ],
)
def test_stopped_across_three_ticks_then_restarted(
    orch: Orch, project: Project, catchup: str, cap: int, expected: list[str]
) -> None:
    _flow(project, catchup, cap)
    _daemon(orch, "2026-11-23T10:00:05+00:00")
    # the daemon is down for 10:15 and 10:30, and comes back just after 10:45
    _daemon(orch, "2026-11-23T10:45:05+00:00")
    assert _ticks(orch) == expected


def test_two_daemons_on_one_database_fire_each_tick_once(orch: Orch, project: Project) -> None:
    _flow(project)
    _daemon(orch, "2026-11-23T09:00:05+00:00")
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        "daemon",
        "flow.py",
        "--once",
        "--now",
        "2026-11-23T10:00:05+00:00",
    ]
    procs = [
        subprocess.Popen(
            cmd,
            cwd=project.root,
            env=orch.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert _ticks(orch) == ["09:00", "09:15", "09:30", "09:45", "10:00"]


def test_paused_schedule_starts_nothing_and_lists_as_paused(orch: Orch, project: Project) -> None:
    _flow(project)
    res = orch("schedules", "flow.py", "--pause", "every15", "--json")
    assert res.code == 0, res.describe()
    (row,) = res.json["schedules"]
    assert row["paused"] is True and row["next_fire"] is None
    _daemon(orch, "2026-11-23T10:00:05+00:00")
    assert _ticks(orch) == []
    res = orch("schedules", "flow.py", "--resume", "every15", "--json")
    assert res.json["schedules"][0]["paused"] is False
    assert res.json["schedules"][0]["cron"] == "*/15 * * * *"


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (
            'Schedule(name="bad", pipeline="job", cron="61 * * * *")',
            "schedule 'bad': invalid cron expression '61 * * * *'",
        ),
        (
            'Schedule(name="tz", pipeline="job", cron="0 * * * *", timezone="Europe/Berln")',
            "unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)",
        ),
        (
            'Schedule(name="nopipe", pipeline="jobb", cron="0 * * * *")',
            "schedule 'nopipe': no pipeline 'jobb' (did you mean 'job'?",
        ),
    ],
)
def test_bad_schedules_are_clear_errors(
    orch: Orch, project: Project, definition: str, message: str
) -> None:
    project.write("flow.py", FLOW.split("every15 =")[0] + f"broken = {definition}\n")
    for cmd in (("schedules", "flow.py"), ("daemon", "flow.py", "--once")):
        res = orch(*cmd)
        assert res.code == 2, res.describe()
        assert "Traceback" not in res.err
        assert message in res.err, res.err


SLOW = """
import time
from pathlib import Path
from orchestrator import pipeline, step
from orchestrator.triggers.events import EventTrigger

@step
def slow(marker: str = "") -> int:
    Path(marker).write_text("started")
    time.sleep(3)
    return 1

@pipeline
def job(marker: str = ""):
    slow(marker=marker)

go = EventTrigger(name="go-trigger", event="go", pipeline="job")
"""


def test_sigterm_lets_the_started_run_finish(orch: Orch, project: Project, tmp_path) -> None:
    import signal

    from orchtest import wait_for

    project.write("flow.py", SLOW)
    marker = project.root / "started.txt"
    res = orch("event", "emit", "go", "--data", f"marker={marker}")
    assert res.code == 0, res.describe()
    proc = orch.popen("daemon", "flow.py", log=tmp_path / "daemon")
    try:
        wait_for(marker.exists, "the triggered run to start", timeout=120)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    (run,) = orch.runs()
    assert run["status"] == "succeeded"  # neither half-started nor abandoned
    assert run["trigger"]["event"] == "go"
    assert "daemon stopped" in (tmp_path / "daemon.err").read_text()
