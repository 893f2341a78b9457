"""The daemon: evaluates schedules and starts the runs they request, exactly once per tick.

Schedules are `Schedule` objects defined at module level in the user's pipeline files;
`pipeline` names a pipeline of the same file, a built-in pipeline, or a full target. Each
tick's run key is claimed in the metadata store before its run starts, so two daemons on
one database (or a restarted daemon) start each tick once; the schedule's cursor (the
last scheduled time handled) is stored after every evaluation, so a restart neither
repeats a tick nor drops one silently (the catch-up policy decides what missed ticks do).

A run is started as a child `orch run` process with the tick recorded as its trigger;
the daemon waits for it, so a SIGTERM lets it finish (or, if killed, the run is recorded
as interrupted and `orch resume` continues it). Between ticks the daemon sleeps until the
next fire time: no busy loop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError, did_you_mean
from orchestrator.graph import Pipeline
from orchestrator.hashing import hash_file
from orchestrator.loader import load_target
from orchestrator.schedules import (
    SCHEDULED_TIME_PARAM,
    RunRequest,
    Schedule,
    evaluate,
    next_fire,
)
from orchestrator.triggers import EventTrigger, FileSensor, decide
from orchestrator.worker import load_module_from_path


@dataclasses.dataclass(frozen=True)
class Bound:
    """A schedule with its pipeline resolved to a loadable target."""

    schedule: Any  # a Schedule or an EventTrigger
    target: str
    pipeline: Pipeline


def load_schedules(files: Iterable[Path]) -> list[Bound]:
    """Every `Schedule` defined at module level in the given files, with its pipeline."""
    return [b for b in load_definitions(files) if isinstance(b.schedule, Schedule)]


def load_definitions(files: Iterable[Path]) -> list[Bound]:
    """Every `Schedule` and `EventTrigger` defined at module level in the given files."""
    out: list[Bound] = []
    names: set[str] = set()
    for file in files:
        if not file.is_file():
            raise OrchestratorError(f"pipeline file not found: {file}")
        module = load_module_from_path(file)
        for value in vars(module).values():
            found = value if isinstance(value, list | tuple) else [value]
            for item in found:
                if not isinstance(item, Schedule | EventTrigger | FileSensor):
                    continue
                if item.name in names:
                    raise OrchestratorError(f"two schedules or triggers are named '{item.name}'")
                names.add(item.name)
                out.append(_bind(item, module, file))
    return out


def _bind(sch: Any, module: Any, file: Path) -> Bound:
    local = getattr(module, sch.pipeline, None)
    if ":" not in sch.pipeline and isinstance(local, Pipeline):
        return Bound(sch, f"{file.resolve()}:{sch.pipeline}", local)
    try:
        return Bound(sch, sch.pipeline, load_target(sch.pipeline))
    except OrchestratorError as exc:
        pipes = [n for n, v in vars(module).items() if isinstance(v, Pipeline)]
        what = {Schedule: "schedule", EventTrigger: "trigger"}.get(type(sch), "sensor")
        raise OrchestratorError(
            f"{what} '{sch.name}': no pipeline '{sch.pipeline}'"
            f"{did_you_mean(sch.pipeline, pipes)} ({exc})"
        ) from None


def cli_args(bound: Bound, params: dict[str, Any], trigger: dict[str, Any]) -> list[str]:
    """`orch run` arguments: the target, its params, and what triggered the run."""
    args = ["run", bound.target, "--json"]
    for key, value in params.items():
        args += ["--param", f"{key}={json.dumps(value)}"]
    return [*args, "--trigger", json.dumps(trigger)]


def run_args(bound: Bound, req: RunRequest) -> list[str]:
    """A tick's run: the schedule's params (and the scheduled time if the pipeline takes it)."""
    params = {
        k: v
        for k, v in req.params.items()
        if k != SCHEDULED_TIME_PARAM or k in bound.pipeline.param_specs
    }
    trigger = {
        "kind": "schedule",
        "schedule": req.schedule,
        "run_key": req.run_key,
        "scheduled_time": req.scheduled_time.isoformat(),
    }
    return cli_args(bound, params, trigger)


def event_run_args(bound: Bound, event: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """An event's run: the params its pipeline declares (others are ignored)."""
    declared = {k: v for k, v in params.items() if k in bound.pipeline.param_specs}
    trigger = {
        "kind": "event",
        "event": event["name"],
        "event_id": event["id"],
        "trigger": bound.schedule.name,
    }
    return cli_args(bound, declared, trigger)


def orch_run(args: list[str]) -> dict[str, Any]:
    """Start a run as a child `orch` process and wait for it."""
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True
    )
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        return {"run_id": None, "status": "failed", "error": proc.stderr.strip()[-500:]}
    return {"run_id": doc.get("run_id"), "status": doc.get("status")}


def launch_subprocess(bound: Bound, req: RunRequest) -> dict[str, Any]:
    return orch_run(run_args(bound, req))


def handle_events(
    store: Any,
    triggers: list[Bound],
    now: dt.datetime,
    owner: str,
    launch: Callable[[list[str]], dict[str, Any]] = orch_run,
) -> list[dict[str, Any]]:
    """Start or drop every pending event, each exactly once (claimed in the store)."""
    events = store.pending_events()
    report: list[dict[str, Any]] = []
    known = sorted({b.schedule.event for b in triggers})
    for ev in events:
        if ev["name"] not in known:
            reason = f"no trigger listens for event '{ev['name']}'{did_you_mean(ev['name'], known)}"
            store.handle_event(ev["id"], "dropped", reason)
            report.append(
                {"event": ev["name"], "event_id": ev["id"], "action": "dropped", "reason": reason}
            )
    for bound in triggers:
        last = store.last_trigger_start(bound.schedule.name)
        for d in decide(bound.schedule, events, last, now):
            if not store.claim("event", f"{d.event_id}:{bound.schedule.name}", owner):
                continue
            ev = next(e for e in events if e["id"] == d.event_id)
            entry = {"event": ev["name"], "event_id": d.event_id, "trigger": bound.schedule.name}
            if not d.start:
                store.handle_event(d.event_id, "dropped", d.reason)
                report.append(entry | {"action": "dropped", "reason": d.reason})
                continue
            started = launch(event_run_args(bound, ev, d.params))
            store.handle_event(d.event_id, "started", d.reason, started.get("run_id"))
            report.append(entry | {"action": "started", **started})
    return report


def tick(
    store: Any,
    schedules: list[Bound],
    now: dt.datetime,
    owner: str,
    launch: Callable[[Bound, RunRequest], dict[str, Any]] = launch_subprocess,
) -> list[dict[str, Any]]:
    """Evaluate every schedule once at `now`; start and record what is due."""
    events = []
    for bound in schedules:
        sch = bound.schedule
        state = store.schedule_state(sch.name)
        effective = dataclasses.replace(sch, paused=sch.paused or state["paused"])
        running = sch.concurrency != "allow" and store.schedule_running(sch.name)
        result = evaluate(effective, state["cursor"], now, running)
        for skip in result.skipped:
            events.append(
                {
                    "schedule": sch.name,
                    "scheduled_time": skip.scheduled_time,
                    "action": "skipped",
                    "reason": skip.reason,
                }
            )
        for req in result.requests:
            if not store.claim("tick", req.run_key, owner):
                events.append(
                    {
                        "schedule": sch.name,
                        "scheduled_time": req.scheduled_time,
                        "action": "skipped",
                        "reason": "claimed by another daemon",
                    }
                )
                continue
            started = launch(bound, req)
            events.append(
                {
                    "schedule": sch.name,
                    "scheduled_time": req.scheduled_time,
                    "action": "started",
                    **started,
                }
            )
        store.set_schedule_state(sch.name, cursor=result.cursor)
    return events


def handle_sensors(
    store: Any,
    sensors: list[Bound],
    now: dt.datetime,
    owner: str,
    launch: Callable[[list[str]], dict[str, Any]] = orch_run,
) -> list[dict[str, Any]]:
    """Start one run per sensor for the files that are new or changed since it last saw them."""
    import glob as globlib

    report = []
    for bound in sensors:
        sensor: FileSensor = bound.schedule
        fresh = []
        for path in sorted(globlib.glob(sensor.glob, recursive=True)):
            p = Path(path)
            if not p.is_file() or now.timestamp() - p.stat().st_mtime < sensor.debounce:
                continue
            key = f"{sensor.name}:{p.resolve()}:{hash_file(p)}"
            if store.claim("file", key, owner):
                fresh.append(str(p.resolve()))
        if not fresh:
            continue
        params = {sensor.param: fresh} if sensor.param in bound.pipeline.param_specs else {}
        trigger = {"kind": "sensor", "sensor": sensor.name, "files": fresh}
        started = launch(cli_args(bound, params, trigger))
        report.append({"sensor": sensor.name, "files": fresh, "action": "started", **started})
    return report


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_forever(
    store: Any,
    schedules: list[Bound],
    log: Callable[[dict[str, Any]], None],
    max_sleep: float = 60.0,
) -> None:
    """Tick, then sleep until the next fire time (or `max_sleep`), until SIGTERM/SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    owner = owner_id()
    timed = [b for b in schedules if isinstance(b.schedule, Schedule)]
    triggers = [b for b in schedules if isinstance(b.schedule, EventTrigger)]
    sensors = [b for b in schedules if isinstance(b.schedule, FileSensor)]
    if triggers or sensors:
        max_sleep = min(max_sleep, 1.0)  # pending events and files are polled
    while not stop.is_set():
        now = dt.datetime.now(dt.UTC)
        for event in [
            *tick(store, timed, now, owner),
            *handle_events(store, triggers, now, owner),
            *handle_sensors(store, sensors, now, owner),
        ]:
            log(event)
        if stop.is_set():
            break
        upcoming = [next_fire(b.schedule, now) for b in timed]
        wait = min([(t - dt.datetime.now(dt.UTC)).total_seconds() for t in upcoming] or [max_sleep])
        stop.wait(min(max(wait, 0.05), max_sleep))
