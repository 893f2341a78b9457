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

from orchestrator.cache.hashing import hash_file, hash_text
from orchestrator.errors import OrchestratorError, TriggerError, did_you_mean
from orchestrator.execution.worker import load_module_from_path
from orchestrator.loader import load_target
from orchestrator.model.graph import Pipeline
from orchestrator.triggers.events import EventTrigger, FileSensor, decide
from orchestrator.triggers.monitors import Checker, DriftMonitor, MetricMonitor
from orchestrator.triggers.schedules import (
    SCHEDULED_TIME_PARAM,
    RunRequest,
    Schedule,
    evaluate,
    next_fire,
)


@dataclasses.dataclass(frozen=True)
class Bound:
    """A schedule with its pipeline resolved to a loadable target."""

    schedule: Any  # a Schedule, EventTrigger, FileSensor, DriftMonitor or MetricMonitor
    target: str
    pipeline: Any  # the Pipeline; None for monitors, which watch a model


def load_schedules(files: Iterable[Path]) -> list[Bound]:
    """Every `Schedule` defined at module level in the given files, with its pipeline."""
    return [b for b in load_definitions(files) if isinstance(b.schedule, Schedule)]


def load_definitions(files: Iterable[Path]) -> list[Bound]:
    """Every `Schedule` and `EventTrigger` defined at module level in the given files."""
    out: list[Bound] = []
    names: set[str] = set()
    for file in files:
        if not file.is_file():
            raise TriggerError(f"pipeline file not found: {file}")
        module = load_module_from_path(file)
        for value in vars(module).values():
            found = value if isinstance(value, list | tuple) else [value]
            for item in found:
                if not isinstance(item, DEFINITIONS):
                    continue
                if item.name in names:
                    raise TriggerError(f"two schedules or triggers are named '{item.name}'")
                names.add(item.name)
                out.append(_bind(item, module, file))
    return out


DEFINITIONS = (Schedule, EventTrigger, FileSensor, DriftMonitor, MetricMonitor)


def _bind(sch: Any, module: Any, file: Path) -> Bound:
    if isinstance(sch, DriftMonitor | MetricMonitor):  # they watch a model, not a pipeline
        return Bound(sch, "", None)
    local = getattr(module, sch.pipeline, None)
    if ":" not in sch.pipeline and isinstance(local, Pipeline):
        return Bound(sch, f"{file.resolve()}:{sch.pipeline}", local)
    try:
        return Bound(sch, sch.pipeline, load_target(sch.pipeline))
    except OrchestratorError as exc:
        pipes = [n for n, v in vars(module).items() if isinstance(v, Pipeline)]
        what = {Schedule: "schedule", EventTrigger: "trigger"}.get(type(sch), "sensor")
        raise TriggerError(
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


def launch_id(kind: str, key: str) -> str:
    """The run id of the run a claimed item starts, fixed before it starts: a second start
    of the same item fails on the id (runs.id is unique) instead of running twice."""
    return hash_text(f"{kind}:{key}")[:12]


def handle_events(
    store: Any, triggers: list[Bound], now: dt.datetime, owner: str
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
        source = f"trigger:{bound.schedule.name}"
        last = store.last_launch(source)
        for d in decide(bound.schedule, events, last, now):
            key = f"{d.event_id}:{bound.schedule.name}"
            ev = next(e for e in events if e["id"] == d.event_id)
            entry = {"event": ev["name"], "event_id": d.event_id, "trigger": bound.schedule.name}
            if not d.start:
                if store.claim("event", key, owner):
                    store.handle_event(d.event_id, "dropped", d.reason)
                    report.append(entry | {"action": "dropped", "reason": d.reason})
                continue
            run_id = launch_id("event", key)
            if store.claim_launch(
                [("event", key)], owner, run_id=run_id, source=source,
                args=event_run_args(bound, ev, d.params),
                event={"id": d.event_id, "reason": d.reason},
            ):  # fmt: skip
                report.append(entry | {"action": "accepted", "run_id": run_id})
    return report


def tick(store: Any, schedules: list[Bound], now: dt.datetime, owner: str) -> list[dict[str, Any]]:
    """Evaluate every schedule once at `now`; claim what is due (the launcher starts it)."""
    events = []
    for bound in schedules:
        sch = bound.schedule
        state = store.schedule_state(sch.name)
        effective = dataclasses.replace(sch, paused=sch.paused or state["paused"])
        source = f"schedule:{sch.name}"
        result = evaluate(effective, state["cursor"], now, False)
        # whether a previous run still goes only matters when a tick is due: ask then
        if result.requests and sch.concurrency != "allow":
            if store.launch_busy(source) or store.schedule_running(sch.name):
                result = evaluate(effective, state["cursor"], now, True)
        for skip in result.skipped:
            events.append(
                {
                    "schedule": sch.name,
                    "scheduled_time": skip.scheduled_time,
                    "action": "skipped",
                    "reason": skip.reason,
                }
            )
        for n, req in enumerate(result.requests):
            run_id = launch_id("tick", req.run_key)
            # without `allow`, caught-up ticks run one after the other
            later = n > 0 and sch.concurrency != "allow"
            status = "queued" if req.queued or later else "pending"
            won = store.claim_launch(
                [("tick", req.run_key)], owner, run_id=run_id, source=source,
                args=run_args(bound, req), status=status,
            )  # fmt: skip
            events.append(
                {
                    "schedule": sch.name,
                    "scheduled_time": req.scheduled_time,
                    "action": status if won else "skipped",
                    **({"run_id": run_id} if won else {"reason": "claimed by another daemon"}),
                }
            )
        store.set_schedule_state(sch.name, cursor=result.cursor)
    return events


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


class Launcher:
    """Starts the runs claimed in the `launches` table as child `orch run` processes.

    `dispatch` starts what may start: pending launches (its own at once, another daemon's
    once that daemon has left them for `takeover` seconds, i.e. it died between claim and
    start) and queued ticks whose schedule is no longer running. `reap` records children
    that ended: done if their run exists, failed (with the child's last stderr lines)
    if it never started. A launch left `launched` by a dead daemon whose run never
    appeared is started again; its fixed run id keeps it from running twice.
    """

    def __init__(
        self, store: Any, owner: str, log_dir: Path, takeover: float = 30.0, prewarm: bool = False
    ) -> None:
        self.store, self.owner, self.log_dir, self.takeover = store, owner, log_dir, takeover
        self.children: dict[str, tuple[subprocess.Popen[bytes], Path, dict[str, Any]]] = {}
        self.prewarm = prewarm  # keep a spare process with the imports done (launchpad)
        self.spare: subprocess.Popen[bytes] | None = None

    def dispatch(self, now: dt.datetime) -> list[dict[str, Any]]:
        report = []
        for row in self.store.launches(["pending", "queued", "launched"]):
            rid = row["run_id"]
            if rid in self.children:
                continue
            age = (now - row["updated_at"]).total_seconds()
            gone = _owner_gone(row["owner"])
            if row["status"] == "launched":  # started by a daemon that is gone?
                if row["owner"] == self.owner or not (gone or age > 4 * self.takeover):
                    continue
                if rid in self.store.existing_runs([rid]):
                    self.store.set_launch(rid, "done", expect={"status": "launched"})
                    continue
            elif row["owner"] != self.owner and not (gone or age > self.takeover):
                continue  # its daemon is starting it
            if row["status"] == "queued" and self.store.launch_busy(row["source"]):
                continue
            expect = {"status": row["status"], "owner": row["owner"]}
            if self.store.set_launch(rid, "launched", owner=self.owner, expect=expect):
                report.append(self._start(row))
        return report

    def _start(self, row: dict[str, Any]) -> dict[str, Any]:
        rid = row["run_id"]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{rid}.log"
        args = [*row["args"], "--run-id", rid]
        proc = self._hand_over(args, log)
        if proc is None:
            with open(log, "ab") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "orchestrator", *args],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
        self.children[rid] = (proc, log, row)
        return {"action": "started", "run_id": rid, "source": row["source"]}

    def _hand_over(self, args: list[str], log: Path) -> subprocess.Popen[bytes] | None:
        """Give the run to the spare process, if there is a live one."""
        spare, self.spare = self.spare, None
        if spare is None or spare.poll() is not None or spare.stdin is None:
            return None
        try:
            spare.stdin.write(json.dumps({"args": args, "log": str(log)}).encode() + b"\n")
            spare.stdin.close()
        except OSError:
            spare.kill()
            spare.wait()
            return None
        return spare

    def keep_spare(self) -> None:
        """Start a spare process (imports done, waiting for a run) if there is none."""
        if not self.prewarm or (self.spare is not None and self.spare.poll() is None):
            return
        self.spare = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.triggers.launchpad"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def close_spare(self) -> None:
        spare, self.spare = self.spare, None
        if spare is not None and spare.stdin is not None:
            spare.stdin.close()  # end of input: it exits without running anything
            try:
                spare.wait(10)
            except subprocess.TimeoutExpired:
                spare.kill()

    def reap(self) -> list[dict[str, Any]]:
        done = [rid for rid, (proc, _, _) in self.children.items() if proc.poll() is not None]
        if not done:
            return []
        runs = self.store.existing_runs(done)
        report = []
        for rid in done:
            proc, log, row = self.children.pop(rid)
            if rid in runs:
                self.store.set_launch(rid, "done")
                report.append({"action": "finished", "run_id": rid, "status": runs[rid]})
                continue
            tail = log.read_text(errors="replace").strip()[-800:] or f"exit code {proc.returncode}"
            self.store.set_launch(rid, "failed", error=tail)
            if row["source"].startswith("trigger:"):
                event_id = int(row["key"].split(":", 1)[0])
                self.store.handle_event(event_id, "failed", f"run did not start: {tail}", rid)
            report.append({"action": "failed", "run_id": rid, "error": tail})
        return report

    def busy(self) -> bool:
        return bool(self.children)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every child (they finish their runs; a SIGTERM'd run is resumable)."""
        for proc, _, _ in list(self.children.values()):
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

    def terminate(self) -> None:
        for proc, _, _ in self.children.values():
            if proc.poll() is None:
                proc.terminate()


def _owner_gone(owner: str) -> bool:
    """Whether the daemon `owner` (host:pid) is known to be dead: on this host only."""
    import psutil

    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not psutil.pid_exists(int(pid))


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
