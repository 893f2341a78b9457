"""Start a run from the UI: a detached `orch run` child, found again by its trigger.

The child is `python -m orchestrator run TARGET --param ... --trigger {"kind": "ui",
"request": ID}` in its own session (a restart of the UI does not stop it), pointed at the
same state as the UI (its `ORCH_HOME`, store URL and artifact folder made absolute), its
output appended to a log file under `<state folder>/ui-runs/`. The run's id is chosen by
the child, so the UI waits (a few seconds at most) for a run row whose trigger carries
the request id; a child that exits before recording a run is reported with its log tail.
A thread reaps each child, so finished runs leave no zombie behind.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from orchestrator.store.browse import run_for_request


@dataclasses.dataclass
class Launched:
    run_id: str | None
    log: Path
    error: str = ""


def child_env(store_url: str, home: Path, artifacts: str) -> dict[str, str]:
    env = dict(os.environ)
    env["ORCH_HOME"] = str(home.resolve())
    local = not artifacts.startswith("s3://")
    env["ORCH_ARTIFACTS"] = str(Path(artifacts).resolve()) if local else artifacts
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str(Path(url.database).resolve()))
    env["ORCH_DB_URL"] = url.render_as_string(hide_password=False)
    return env


def start_run(
    store: Any,
    artifacts: Any,
    home: Path,
    target: str,
    params: list[str],
    wait: float = 8.0,
    command: str = "run",
) -> Launched:
    """Start the run (`orch COMMAND TARGET PARAMS...`: `run`, or `resume` a run id); return
    its id once recorded (None if it did not show in `wait` s)."""
    request = uuid.uuid4().hex
    folder = home / "ui-runs"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC)
    log = folder / f"{stamp:%Y%m%dT%H%M%S}-{request[:8]}.log"
    trigger = json.dumps({"kind": "ui", "request": request})
    cmd = [sys.executable, "-m", "orchestrator", command, target, *params, "--trigger", trigger]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(store.url, home, artifacts.location),
            start_new_session=True,
        )
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        run_id = _find(store, request, stamp)
        if run_id is not None:
            return Launched(run_id, log)
        if proc.poll() is not None:
            run_id = _find(store, request, stamp)
            if run_id is not None:
                return Launched(run_id, log)
            return Launched(None, log, _tail(log) or f"`orch {command}` exited {proc.returncode}")
        time.sleep(0.05)
    return Launched(None, log)


def _find(store: Any, request: str, since: dt.datetime) -> str | None:
    return run_for_request(store, request, since)


def _tail(log: Path, lines: int = 20) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
