"""`orch logs RUN [STEP] [--follow]`: a run's step logs, and live ones while it runs.

A finished step's log comes from the metadata store. A running step's lines come from
its live file, `$ORCH_HOME/logs/RUN/STEP.log`, which the runner's thread and process
executors append to line by line and remove when the run ends. `--follow` polls those
files and the run's state, prints each new line once, and returns when the run has
ended: then whatever a step wrote after the last poll is taken from the store (the file
offset in bytes tells where the printed part ends; a retried step's store log holds its
last attempt only, so its remainder may be shorter than what the file showed).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from orchestrator.config import Workspace
from orchestrator.errors import NotFound, did_you_mean
from orchestrator.logs import LogTail
from orchestrator.state import RunStatus

POLL = 0.1
STATUS_EVERY = 0.5
_RUNNING = {"running", "pending", "retrying"}


def _writer(step: str | None) -> Callable[[str, str], None]:
    def write(name: str, line: str) -> None:
        sys.stdout.write(line + "\n" if step else f"{name} | {line}\n")
        sys.stdout.flush()

    return write


def _check_step(run: dict[str, Any], rows: list[dict[str, Any]], step: str | None) -> None:
    names = [r["name"] for r in rows]
    if step is not None and step not in names:
        raise NotFound(
            f"run {run['id']} has no step '{step}'{did_you_mean(step, names)}; "
            f"its steps: {', '.join(names) or 'none'}"
        )


def print_logs(ws: Workspace, run_id: str, step: str | None, follow: bool) -> None:
    run = ws.store.get_run(run_id)
    rows = ws.store.step_runs(run["id"])
    _check_step(run, rows, step)
    write = _writer(step)
    if follow:
        _Follower(ws, run["id"], step, write).run()
        return
    tail = LogTail(ws.logs_dir / run["id"])
    for r in rows:
        if step is not None and r["name"] != step:
            continue
        running = r["state"] in _RUNNING
        lines = tail.drain(r["name"]) if running else (r.get("log") or "").splitlines()
        for line in lines:
            write(r["name"], line)


class _Follower:
    """Prints each step's lines once: from live files while running, then from the store."""

    def __init__(
        self, ws: Workspace, run_id: str, step: str | None, write: Callable[[str, str], None]
    ) -> None:
        self.ws, self.run_id, self.step, self.write = ws, run_id, step, write
        self.tail = LogTail(ws.logs_dir / run_id, None if step is None else {step})
        self.done: set[str] = set()

    def run(self) -> None:
        last_check = 0.0
        while True:
            for name, line in self.tail.poll():
                if name not in self.done:
                    self.write(name, line)
            if time.monotonic() - last_check >= STATUS_EVERY:
                last_check = time.monotonic()
                ended = self.ws.store.get_run(self.run_id)["status"] != RunStatus.RUNNING
                self._settle(ended)
                if ended:
                    return
            time.sleep(POLL)

    def _settle(self, ended: bool) -> None:
        """Steps that have finished: print what the live file did not show, once."""
        for r in self.ws.store.step_runs(self.run_id):
            name = r["name"]
            if name in self.done or (self.step is not None and name != self.step):
                continue
            if r["state"] in _RUNNING and not ended:
                continue
            for line in self.tail.drain(name):
                self.write(name, line)
            seen = self.tail.printed(name)
            rest = (r.get("log") or "").encode()[seen:].decode("utf-8", "replace")
            for line in rest.splitlines():
                self.write(name, line)
            self.done.add(name)
