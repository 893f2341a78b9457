"""The agent of a warm container: one long-lived process that forks a fresh one per attempt.

Run as the container's command (PID 1) by `orchestrator.execution.pool`::

    python -m orchestrator.execution.agent CONTROL_DIR ARTIFACT_ROOT [--learn]

It listens on `CONTROL_DIR/agent.sock` and serves one request per connection, one at a
time: `{"op": "ping"}`, or `{"op": "run", "dir": D, "env": {...}}` where `D` holds
`invocation.json`. For a run it forks a child that resets its environment to the agent's
own (as the container started) plus the request's, takes `D/home` as HOME, `D/tmp` as
TMPDIR and `D/work` as its working folder, and runs the attempt through
`orchestrator.execution.remote` (result in `D/result.json`, outputs in `D/out`, prints in
`D/output.log`). The agent never imports user code itself.

Invariants, checked after every attempt:
- before the next request is served, nothing the attempt wrote outside `D/out` and
  `D/result.json` is left: `D/home`, `D/tmp`, `D/work` are removed and `/tmp` and
  `/dev/shm` emptied (after the reply, so the step's result does not wait for it);
- before the reply, no process of the attempt is left: any other process in the
  container is killed, and the reply says the container is not to be reused
  (`"reuse": false`), as it does after an OOM kill in the container's memory cgroup or an
  exit without a result; the agent then exits.
With `--learn`, the modules an attempt imported from site-packages (never the user's
code) are imported into the agent after it, so later attempts start with them loaded.

What makes an attempt cheap: the agent warms the library state every attempt would
build again (pydantic's plugin lookup and validators of the builtin types, never user
code), freezes its objects out of the garbage collector's reach before each fork (so
the child's collections do not copy the agent's memory page by page), and the child
calls the worker entry point directly and reports only the modules the agent lacks.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from orchestrator.execution import remote

_OOM = Path("/sys/fs/cgroup/memory/memory.oom_control")
_OOM_V2 = Path("/sys/fs/cgroup/memory.events")
_SCRUB = (Path("/tmp"), Path("/dev/shm"))
_BASE_ENV = dict(os.environ)


def oom_kills() -> int:
    """OOM kills so far in this container's memory cgroup (v1 or v2); 0 if unreadable."""
    for path in (_OOM, _OOM_V2):
        try:
            for line in path.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            continue
    return 0


def other_processes() -> list[int]:
    """Every process in the container but this one (the agent is PID 1 in its namespace)."""
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(folder: Path, env: dict[str, str], root: str, known: frozenset[str]) -> int:
    """In the forked child: the attempt, with nothing of the agent's state but its imports."""
    os.setsid()
    log = os.open(folder / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.clear()
    os.environ.update({**_BASE_ENV, **env})
    os.environ.update(HOME=str(folder / "home"), TMPDIR=str(folder / "tmp"))
    import tempfile

    tempfile.tempdir = None
    os.chdir(folder / "work")
    code = remote.run_files(
        folder / "invocation.json", folder / "result.json", root, str(folder / "out")
    )
    if new := _third_party(known):
        (folder / "modules.json").write_text(json.dumps(new))
    return code


def _third_party(known: frozenset[str] = frozenset()) -> list[str]:
    """Modules loaded from site-packages (safe to preload: the image's own, fixed), but
    for those in `known` (the agent's own at the fork)."""
    names = set()
    for name in sys.modules.keys() - known:
        file = getattr(sys.modules.get(name), "__file__", None) or ""
        if name.endswith("__main__") or name == "orchestrator.execution.agent":
            continue
        if "site-packages" in file or "dist-packages" in file:
            names.add(name)
    return sorted(names)


def _scrub(folder: Path) -> None:
    for sub in ("home", "tmp", "work"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    for place in _SCRUB:
        for entry in place.iterdir() if place.is_dir() else []:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _learn(folder: Path) -> None:
    try:
        names = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError):
        return
    for name in names:
        if name not in sys.modules:
            try:
                __import__(name)
            except Exception:  # noqa: BLE001, S112 - a preload is only a speed-up
                continue


def run_attempt(folder: Path, env: dict[str, str], root: str) -> dict[str, Any]:
    """Fork, wait, check: the reply to one `run` request (`after_attempt` cleans up)."""
    for sub in ("home", "tmp", "work", "out"):
        (folder / sub).mkdir(exist_ok=True)
    before, t0 = oom_kills(), time.perf_counter()
    known = frozenset(sys.modules)
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()  # the agent's objects stay out of the child's collections (and unshared)
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            code = _child(folder, env, root, known)
        except BaseException:  # noqa: BLE001 - the child must end here, whatever happened
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    took = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    left = other_processes()
    for other in left:
        try:
            os.kill(other, signal.SIGKILL)
        except ProcessLookupError:
            continue
    _reap()
    oom = oom_kills() > before
    reuse = not (left or oom) and (folder / "result.json").exists() and code in (0, 1)
    return {"code": code, "oom": oom, "left": len(left), "reuse": reuse, "took": took}


def after_attempt(folder: Path, learn: bool) -> None:
    """Between the reply and the next request: remove what the attempt wrote, then
    (with `--learn`) import what it used."""
    _scrub(folder)
    if learn:
        _learn(folder)


def warm_up() -> None:
    """Build once the library state each attempt would otherwise build for itself:
    pydantic's plugin lookup (it reads every installed package's entry points) and the
    validators of the builtin parameter types."""
    from orchestrator.model.types import validate_value

    for annotation, value in ((int, 1), (float, 1.0), (str, ""), (bool, True)):
        validate_value(annotation, value, "warm-up")


def serve(control: Path, root: str, learn: bool) -> None:
    warm_up()
    old = os.umask(0)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = control / "agent.sock"
    path.unlink(missing_ok=True)
    sock.bind(str(path))
    os.umask(old)
    sock.listen(4)
    while True:
        conn, _ = sock.accept()
        with conn, conn.makefile("rwb") as stream:
            request = json.loads(stream.readline() or b"{}")
            run = request.get("op") == "run"
            folder = Path(request["dir"]) if run else None
            reply = run_attempt(folder, request.get("env", {}), root) if folder else {"ok": True}
            stream.write(json.dumps(reply).encode() + b"\n")
            stream.flush()
        if folder is None:
            continue
        if not reply["reuse"]:
            return  # the container ends with its agent; the pool discards it
        after_attempt(folder, learn)  # before the next connection is accepted


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    learn = "--learn" in args
    control, root = (a for a in args if a != "--learn")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 has no default handler
    serve(Path(control), root, learn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
