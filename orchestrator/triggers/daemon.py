"""The daemon: evaluates schedules, events, sensors and monitors, and starts the runs they
request, exactly once each.

What is due comes from the pure evaluators (`schedules.evaluate`, `events.decide`); this
module stores their cursors and claims each item (a tick's run key, an event for a
trigger, a file's content) in the metadata store before its run is recorded, so two
daemons on one database (or a restarted daemon) start each item once; the schedule's
cursor (the last scheduled time handled) is stored after every evaluation, so a restart
neither repeats a tick nor drops one silently (the catch-up policy decides what missed
ticks do). Every item not started is logged with the reason: a skipped tick says whether
its previous run still goes or another daemon took the tick itself.

Pending events are taken in batches of `EVENT_BATCH` until none is left (at most
`MAX_EVENT_BATCHES` a pass; the pass says when more wait for the next one).

Runs start as child `orch run` processes (`launcher.Launcher`) with the item recorded as
their trigger; the daemon waits for them, so a SIGTERM lets them finish (or, if killed,
the run is recorded as interrupted and `orch resume` continues it). Between ticks the
daemon sleeps until the next fire time: no busy loop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.cache.hashing import hash_file
from orchestrator.errors import ParamError, did_you_mean
from orchestrator.triggers.definitions import (
    DEFINITIONS,
    Bound,
    load_definitions,
    load_schedules,
)
from orchestrator.triggers.events import EventTrigger, FileSensor, decide
from orchestrator.triggers.launcher import (
    Launcher,
    cli_args,
    event_run_args,
    launch_id,
    owner_id,
    run_args,
)
from orchestrator.triggers.monitors import Checker, DriftMonitor, MetricMonitor
from orchestrator.triggers.schedules import (
    SKIP_RUNNING,
    RunRequest,
    Schedule,
    evaluate,
    next_fire,
    run_key,
)

EVENT_BATCH = 100
"""Pending events read and handled at a time."""

MAX_EVENT_BATCHES = 100
"""Batches per pass at most, so a flood of events cannot hold back the schedules' ticks."""


def handle_events(
    store: Any, triggers: list[Bound], now: dt.datetime, owner: str
) -> list[dict[str, Any]]:
    """Start or drop every pending event, each exactly once (claimed in the store), taking
    batches of `EVENT_BATCH` until none is left; a trigger's cooldown holds across them.

    An event this daemon could not settle (another daemon holds its claim) stays pending
    and is passed over, not read again, for the rest of the pass.
    """
    report: list[dict[str, Any]] = []
    last = {b.schedule.name: store.last_launch(f"trigger:{b.schedule.name}") for b in triggers}
    seen: set[int] = set()
    unsettled = 0
    for _ in range(MAX_EVENT_BATCHES):
        limit = unsettled + EVENT_BATCH
        rows = store.pending_events(limit=limit)
        batch = [e for e in rows if e["id"] not in seen]
        if not batch:
            return report
        seen.update(e["id"] for e in batch)
        done = _handle_batch(store, triggers, batch, last, now, owner)
        settled = {entry["event_id"] for entry in done}
        unsettled += sum(e["id"] not in settled for e in batch)
        report += done
        if len(rows) < limit:
            return report
    reason = f"more than {len(seen)} pending events: the rest wait for the next pass"
    return [*report, {"action": "events deferred", "reason": reason}]


def _handle_batch(
    store: Any,
    triggers: list[Bound],
    events: list[dict[str, Any]],
    last: dict[str, dt.datetime | None],
    now: dt.datetime,
    owner: str,
) -> list[dict[str, Any]]:
    """Settle one batch; `last` (trigger name -> last start) is updated for the next one."""
    report: list[dict[str, Any]] = []
    known = sorted({b.schedule.event for b in triggers})
    for ev in events:
        if ev["name"] not in known:
            reason = f"no trigger listens for event '{ev['name']}'{did_you_mean(ev['name'], known)}"
            store.handle_event(ev["id"], "dropped", reason)
            report.append(
                {"event": ev["name"], "event_id": ev["id"], "action": "dropped", "reason": reason}
            )
    by_id = {e["id"]: e for e in events}
    started: set[int] = set()
    for bound in triggers:
        name = bound.schedule.name
        decisions = decide(bound.schedule, events, last[name], now)
        if any(d.start for d in decisions):
            last[name] = now
        for d in decisions:
            key, ev = f"{d.event_id}:{name}", by_id[d.event_id]
            entry = {"event": ev["name"], "event_id": d.event_id, "trigger": name}
            if not d.start:
                if store.claim("event", key, owner):
                    if d.event_id not in started:  # another trigger's start is what it did
                        store.handle_event(d.event_id, "dropped", d.reason)
                    report.append(entry | {"action": "dropped", "reason": d.reason})
                continue
            run_id = launch_id("event", key)
            if store.claim_launch(
                [("event", key)], owner, run_id=run_id, source=f"trigger:{name}",
                args=event_run_args(bound, ev, d.params),
                event={"id": d.event_id, "reason": d.reason},
            ):  # fmt: skip
                started.add(d.event_id)
                report.append(entry | {"action": "accepted", "run_id": run_id})
    return report


def tick(store: Any, schedules: list[Bound], now: dt.datetime, owner: str) -> list[dict[str, Any]]:
    """Evaluate every schedule once at `now`; claim what is due (the launcher starts it)."""
    events = []
    for bound in schedules:
        sch = bound.schedule
        state = store.schedule_state(sch.name)
        effective = dataclasses.replace(sch, paused=sch.paused or state["paused"])
        result = evaluate(effective, state["cursor"], now, False)
        # whether a previous run still goes only matters when a tick is due: ask then
        if result.requests and sch.concurrency != "allow":
            if store.launch_busy(f"schedule:{sch.name}") or store.schedule_running(sch.name):
                result = evaluate(effective, state["cursor"], now, True)
        for skip in result.skipped:
            reason = skip.reason
            if reason == SKIP_RUNNING:  # or is the run that goes this very tick's?
                reason = _taken(store, run_key(sch, skip.scheduled_time)) or reason
            events.append(_entry(sch, skip.scheduled_time, "skipped", reason=reason))
        for n, req in enumerate(result.requests):
            # without `allow`, caught-up ticks run one after the other
            later = n > 0 and sch.concurrency != "allow"
            events.append(_claim_tick(store, bound, req, later, owner))
        store.set_schedule_state(sch.name, cursor=result.cursor)
    return events


def _claim_tick(
    store: Any, bound: Bound, req: RunRequest, later: bool, owner: str
) -> dict[str, Any]:
    run_id = launch_id("tick", req.run_key)
    status = "queued" if req.queued or later else "pending"
    if store.claim_launch(
        [("tick", req.run_key)], owner, run_id=run_id, source=f"schedule:{req.schedule}",
        args=run_args(bound, req), status=status,
    ):  # fmt: skip
        return _entry(bound.schedule, req.scheduled_time, status, run_id=run_id)
    reason = _taken(store, req.run_key) or "claimed by another daemon"
    return _entry(bound.schedule, req.scheduled_time, "skipped", reason=reason)


def _taken(store: Any, key: str) -> str | None:
    """`claimed by another daemon (OWNER)` if a daemon has claimed the tick `key`."""
    owner = store.claim_owner("tick", key)
    return None if owner is None else f"claimed by another daemon ({owner})"


def _entry(sch: Schedule, at: dt.datetime, action: str, **extra: Any) -> dict[str, Any]:
    return {"schedule": sch.name, "scheduled_time": at, "action": action, **extra}


def parse_now(text: str | None, once: bool) -> dt.datetime:
    """The time a pass evaluates at: `orch daemon --once --now TIME` (ISO 8601 with a zone),
    else the current time. A bad value is a `ParamError` naming the option."""
    if text is None:
        return dt.datetime.now(dt.UTC)
    if not once:
        raise ParamError("--now sets the time of a single pass: use it with --once")
    try:
        at = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ParamError(
            f"--now {text!r} is not an ISO 8601 time; expected e.g. 2026-11-23T10:00:00Z"
        ) from None
    if at.tzinfo is None:
        raise ParamError(f"--now {text!r} needs a time zone, e.g. {text}Z")
    return at


def handle_sensors(
    store: Any, sensors: list[Bound], now: dt.datetime, owner: str
) -> list[dict[str, Any]]:
    """Start one run per sensor for the files that are new or changed since it last saw them."""
    import glob as globlib

    report = []
    for bound in sensors:
        sensor: FileSensor = bound.schedule
        fresh: dict[str, str] = {}
        for path in sorted(globlib.glob(sensor.glob, recursive=True)):
            p = Path(path)
            if not p.is_file() or now.timestamp() - p.stat().st_mtime < sensor.debounce:
                continue
            key = f"{sensor.name}:{p.resolve()}:{hash_file(p)}"
            if store.claim_owner("file", key) is None:
                fresh[str(p.resolve())] = key
        if not fresh:
            continue
        files = list(fresh)
        params = {sensor.param: files} if sensor.param in bound.pipeline.param_specs else {}
        trigger = {"kind": "sensor", "sensor": sensor.name, "files": files}
        claims = [("file", k) for k in fresh.values()]
        run_id = launch_id("file", "|".join(k for _, k in claims))
        if store.claim_launch(
            claims, owner, run_id=run_id, source=f"sensor:{sensor.name}",
            args=cli_args(bound, params, trigger),
        ):  # fmt: skip
            report.append(
                {"sensor": sensor.name, "files": files, "action": "accepted", "run_id": run_id}
            )
    return report


def handle_monitors(
    store: Any, artifacts: Any, monitors: list[Bound], now: dt.datetime, owner: str
) -> list[dict[str, Any]]:
    """Run every drift and metric monitor on its new data; fired checks emit events."""
    if not monitors:
        return []
    checker = Checker(store, artifacts, owner)
    return checker.run([b.schedule for b in monitors], now.timestamp())


def evaluate_all(
    store: Any,
    artifacts: Any,
    bound: list[Bound],
    now: dt.datetime,
    launcher: Launcher,
) -> list[dict[str, Any]]:
    """One pass: reap ended runs, claim due ticks, run monitors, take pending events and
    new files, then start what was claimed."""
    owner = launcher.owner
    kinds: dict[type, list[Bound]] = {k: [] for k in DEFINITIONS}
    for b in bound:
        kinds[type(b.schedule)].append(b)
    monitors = kinds[DriftMonitor] + kinds[MetricMonitor]
    wall = dt.datetime.now(dt.UTC)  # files are debounced against the real clock
    return [
        *launcher.reap(),
        *tick(store, kinds[Schedule], now, owner),
        *handle_monitors(store, artifacts, monitors, wall, owner),
        *handle_events(store, kinds[EventTrigger], now, owner),
        *handle_sensors(store, kinds[FileSensor], wall, owner),
        *launcher.dispatch(wall),
    ]


def run_once(
    store: Any, artifacts: Any, bound: list[Bound], now: dt.datetime, log_dir: Path,
    log: Callable[[dict[str, Any]], None],
) -> None:  # fmt: skip
    """`--once`: one pass, then wait for the runs it started (and what they queued)."""
    launcher = Launcher(store, owner_id(), log_dir)
    for event in evaluate_all(store, artifacts, bound, now, launcher):
        log(event)
    while launcher.busy():
        launcher.wait()
        for event in [*launcher.reap(), *launcher.dispatch(dt.datetime.now(dt.UTC))]:
            log(event)


def run_forever(
    store: Any,
    schedules: list[Bound],
    log: Callable[[dict[str, Any]], None],
    log_dir: Path,
    artifacts: Any = None,
    max_sleep: float = 60.0,
) -> None:
    """Pass, then sleep until the next fire time (or `max_sleep`), until SIGTERM/SIGINT.

    Runs start as child processes, so a long run never delays a tick. On the first
    SIGTERM the daemon starts nothing new and waits for its runs to finish; a second one
    passes SIGTERM on to them (each is then recorded as interrupted, and resumable).
    """
    stop = threading.Event()
    launcher = Launcher(store, owner_id(), log_dir, prewarm=True)

    def on_signal(*_: Any) -> None:
        if stop.is_set():
            launcher.terminate()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    timed = [b for b in schedules if isinstance(b.schedule, Schedule)]
    poll = 1.0 if len(timed) < len(schedules) else max_sleep
    while not stop.is_set():
        now = dt.datetime.now(dt.UTC)
        for event in evaluate_all(store, artifacts, schedules, now, launcher):
            log(event)
        if stop.is_set():
            break
        launcher.keep_spare()
        upcoming = [next_fire(b.schedule, now) for b in timed]
        wait = min([(t - dt.datetime.now(dt.UTC)).total_seconds() for t in upcoming] or [poll])
        # while runs go on, look in every second to reap them and start queued ticks
        limit = min(poll, 1.0) if launcher.busy() else poll
        stop.wait(min(max(wait, 0.05), limit))
    launcher.close_spare()
    if launcher.busy():
        log({"action": "waiting", "runs": ",".join(launcher.children)})
        launcher.wait()
    for event in launcher.reap():
        log(event)


__all__ = [
    "Bound",
    "evaluate_all",
    "handle_events",
    "launch_id",
    "load_definitions",
    "load_schedules",
    "parse_now",
    "run_forever",
    "run_once",
    "tick",
]
