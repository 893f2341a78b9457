"""Launching: how a claimed tick, event or batch of files becomes a child `orch run`.

A claim in the metadata store records the `orch run` arguments of the run it starts and
a run id fixed at claim time (`launch_id`), so a second start of the same item fails on
the id (runs.id is unique) instead of running twice. The `Launcher` starts the runs
claimed in the `launches` table as child processes and records how they ended; it never
decides what is due (the daemon's evaluators do).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from orchestrator.cache.hashing import hash_text
from orchestrator.triggers.definitions import Bound
from orchestrator.triggers.schedules import SCHEDULED_TIME_PARAM, RunRequest


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


__all__ = ["Launcher", "cli_args", "event_run_args", "launch_id", "owner_id", "run_args"]
