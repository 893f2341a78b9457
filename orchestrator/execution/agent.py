"""The agent of a warm container: one long-lived process that forks a fresh one per attempt.

Run as the container's command (PID 1) by `orchestrator.execution.pool`::

    python -m orchestrator.execution.agent CONTROL_DIR ARTIFACT_ROOT [--learn]

It listens on `CONTROL_DIR/agent.sock` and serves one request per connection, one at a
time: `{"op": "ping"}`, or `{"op": "run", "dir": D, "env": {...}}` where `D` holds
`invocation.json`. For a run it forks a child that resets its environment to the agent's
own (as the container started) plus the request's, takes `D/home` as HOME, `D/tmp` as
TMPDIR and `D/work` as its working folder, and runs the attempt through
`orchestrator.execution.remote` (result in `D/result.json`, outputs in `D/out`, prints in
`D/output.log`). The agent never runs user code itself (it may compile it, see below).

Invariants, checked after every attempt:
- before the next request is served, nothing the attempt wrote outside `D/out` and
  `D/result.json` is left: `D/home`, `D/tmp`, `D/work` are removed and `/tmp` and
  `/dev/shm` emptied (after the reply, so the step's result does not wait for it);
- before the reply, nothing of the attempt can run any more: the child, once it has
  written its result and says so on a pipe, is sent SIGKILL (it is only exiting by then),
  any other process in the container is killed, and the reply says the container is not
  to be reused (`"reuse": false`), as it does after an OOM kill in the container's memory
  cgroup or an exit without a result; the agent then exits. The child is reaped after the
  reply, at the latest before the next attempt's child is forked (tearing down a large
  address space takes milliseconds the step need not wait for, but the next attempt
  gets its memory back), and the container is checked once more for processes before
  the next request is served; one found then ends the agent, and the container with it.
With `--learn`, the modules an attempt imported from site-packages or the standard
library (never the user's code) are imported into the agent after it, so later attempts
start with them loaded. The user's source files an attempt had to compile are compiled
again by the agent after it (never run) and kept with their exact bytes: a later
attempt's child that reads the same bytes from the same path takes that code, and one
that reads anything else (an edited file) compiles it afresh.

What makes an attempt cheap: the agent warms the library state every attempt would
build again (pydantic's plugin lookup and validators of the builtin types, never user
code), freezes its objects out of the garbage collector's reach before each fork (so
the child's collections do not copy the agent's memory page by page), and the child
calls the worker entry point directly and reports only the modules the agent lacks (noted
by a finder as they are imported: walking `sys.modules` would write to the page of every
module's name, each then copied from the agent).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.machinery
import json
import os
import select
import shutil
import signal
import socket
import sys
import sysconfig
import time
import traceback
import types
from pathlib import Path
from typing import Any

from orchestrator.execution import remote

_OOM = Path("/sys/fs/cgroup/memory/memory.oom_control")
_OOM_V2 = Path("/sys/fs/cgroup/memory.events")
_SCRUB = (Path("/tmp"), Path("/dev/shm"))
_BASE_ENV = dict(os.environ)
_LIBRARY = tuple(
    {sysconfig.get_paths()[k] + os.sep for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_NEVER_LEARNED = frozenset({"this", "antigravity", "__hello__", "__phello__"})
_CODE: dict[str, tuple[bytes, types.CodeType]] = {}  # path -> its bytes, their code
_CODE_FILES, _CODE_BYTES = 256, 1 << 20  # at most so many files kept, each at most so big
_GONE = (ProcessLookupError, ChildProcessError)
_DYING: set[int] = set()  # children sent SIGKILL after their word, not reaped yet


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
        _DYING.discard(pid)


def _bury() -> None:
    """Wait for the children still exiting: their memory is free before another starts."""
    for pid in sorted(_DYING):
        with contextlib.suppress(*_GONE):
            os.waitpid(pid, 0)
        _DYING.discard(pid)


class _Imports:
    """First on the child's `sys.meta_path`: notes the name of each module imported anew
    (finders are asked only for modules not loaded yet) and finds nothing itself."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        self.names.append(name)


def _code_from_agent(compiled: list[str]) -> None:
    """In the child: a source file the agent has compiled, byte for byte as read now,
    takes the agent's code; any other is compiled here and its path noted in `compiled`."""
    loader = importlib.machinery.SourceFileLoader
    compile_here = loader.source_to_code

    def source_to_code(self: Any, data: Any, path: Any, *, _optimize: int = -1) -> Any:
        kept = _CODE.get(path) if isinstance(path, str) else None
        if kept is not None and kept[0] == data and _optimize == -1:
            return kept[1]
        if isinstance(path, str) and not _library(path):
            compiled.append(path)
        return compile_here(self, data, path, _optimize=_optimize)

    loader.source_to_code = source_to_code  # type: ignore[assignment]


def _child(folder: Path, env: dict[str, str], root: str) -> int:
    """In the forked child: the attempt, with nothing of the agent's state but its imports."""
    os.setsid()
    imports, compiled = _Imports(), list[str]()
    sys.meta_path.insert(0, imports)  # type: ignore[arg-type]
    _code_from_agent(compiled)
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
    learned = {"modules": _third_party(imports.names), "sources": compiled}
    if any(learned.values()):
        (folder / "modules.json").write_text(json.dumps(learned))
    return code


def _library(file: str) -> bool:
    """Whether `file` is the image's own (the standard library or an installed package)."""
    return file.startswith(_LIBRARY) or "site-packages" in file or "dist-packages" in file


def _third_party(names: list[str]) -> list[str]:
    """Of the modules `names`, those loaded from the standard library or site-packages
    (safe to preload: the image's own, fixed)."""
    out = set()
    for name in names:
        file = getattr(sys.modules.get(name), "__file__", None) or ""
        if name in _NEVER_LEARNED or name.endswith("__main__") or not file:
            continue
        if name != "orchestrator.execution.agent" and _library(file):
            out.add(name)
    return sorted(out)


def _scrub(folder: Path) -> None:
    for sub in ("home", "tmp", "work"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    for place in _SCRUB:
        for entry in place.iterdir() if place.is_dir() else []:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _learn(report: bytes) -> None:
    try:
        learned = json.loads(report)
        names, sources = list(learned["modules"]), list(learned["sources"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    for name in names:
        if isinstance(name, str) and name not in sys.modules:
            try:
                __import__(name)
            except Exception:  # noqa: BLE001, S112 - a preload is only a speed-up
                continue
    for path in sources:
        _compile(path)


def _compile(path: Any) -> None:
    """Compile (never run) a user's source file and keep its code with its bytes."""
    if not isinstance(path, str) or (path not in _CODE and len(_CODE) >= _CODE_FILES):
        return
    try:
        with open(path, "rb") as f:
            data = f.read(_CODE_BYTES + 1)
        if len(data) > _CODE_BYTES:
            return
        _CODE[path] = (data, compile(data, path, "exec", dont_inherit=True))
    except (OSError, SyntaxError, ValueError):
        _CODE.pop(path, None)


def _wait_done(pid: int, done: int) -> int | None:
    """The exit code the child reports on the pipe `done` once its result is written; None
    if it ends (or closes the pipe, or writes anything else) without one."""
    poll, data = select.poll(), b""
    poll.register(done, select.POLLIN)
    while True:
        if not poll.poll(20):  # no word yet: ended without one (killed, crashed)?
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return None
            continue
        chunk = os.read(done, 16)
        data += chunk
        if not chunk or len(data) > 8 or data.endswith(b"\n"):
            break
    text = data.decode(errors="replace").strip()
    return int(text) if text.isdigit() and data.endswith(b"\n") else None


def run_attempt(
    folder: Path, env: dict[str, str], root: str, agents: tuple[int, ...] = ()
) -> tuple[dict[str, Any], bytes]:
    """Fork, wait for the result, check: the reply to one `run` request and what the
    child reported it loaded (`after_attempt` learns it; read now, as the runner removes
    the attempt's folder once it has the reply). `agents`: the agent's descriptors (its
    socket, the runner's connection), closed in the child."""
    _bury()
    for sub in ("home", "tmp", "work", "out"):
        (folder / sub).mkdir(exist_ok=True)
    before, t0 = oom_kills(), time.perf_counter()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()  # the agent's objects stay out of the child's collections (and unshared)
    done, tell = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in (done, *agents):
            os.close(fd)
        code, pipe = 70, os.fstat(tell).st_ino
        try:
            code = _child(folder, env, root)
        except BaseException:  # noqa: BLE001 - the child must end here, whatever happened
            traceback.print_exc()
        finally:
            try:
                _tell(tell, pipe, code)
            finally:
                os._exit(code)
    os.close(tell)
    try:
        code = _wait_done(pid, done)
    finally:
        os.close(done)
    if code is None:  # no word: its exit status says how it ended
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    else:
        with contextlib.suppress(*_GONE):
            os.kill(pid, signal.SIGKILL)  # exiting already; nothing of it runs after its word
        _DYING.add(pid)  # reaped off the step's path (`_reap`, `_bury`)
    took = time.perf_counter() - t0
    left = _kill_others()
    oom = oom_kills() > before
    reuse = not (left or oom) and (folder / "result.json").exists() and code in (0, 1)
    try:
        report = (folder / "modules.json").read_bytes() if reuse else b""
    except OSError:
        report = b""
    return {"code": code, "oom": oom, "left": left, "reuse": reuse, "took": took}, report


def _tell(fd: int, pipe: int, code: int) -> None:
    """In the child, its result written: flush its prints and give its exit code on the
    pipe to the agent (unless the step closed that pipe: the agent then waits for the
    exit)."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    with contextlib.suppress(OSError):
        if os.fstat(fd).st_ino == pipe:
            os.write(fd, f"{code}\n".encode())


def _kill_others() -> int:
    """Kill every process in the container but the agent and its children killed after
    their word (only exiting); reap what has ended; how many there were."""
    left = [p for p in other_processes() if p not in _DYING]
    for other in left:
        with contextlib.suppress(*_GONE):
            os.kill(other, signal.SIGKILL)
    _reap()
    return len(left)


def settle() -> bool:
    """After the reply: check once more that no process of the attempt is left; False if
    one was (killed now): the container is not to serve on."""
    return _kill_others() == 0


def after_attempt(folder: Path, report: bytes) -> None:
    """Between the reply and the next request: remove what the attempt wrote, then
    import what it used and compile the user's files it compiled (its `report`, empty
    without `--learn`)."""
    _scrub(folder)
    if report:
        _learn(report)


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
            reply, report = (
                run_attempt(folder, request.get("env", {}), root, (sock.fileno(), conn.fileno()))
                if folder
                else ({"ok": True}, b"")
            )
            stream.write(json.dumps(reply).encode() + b"\n")
            stream.flush()
        if folder is None:
            continue
        if not settle() or not reply["reuse"]:
            return  # the container ends with its agent; the pool discards it
        after_attempt(folder, report if learn else b"")  # before the next connection


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    learn = "--learn" in args
    control, root = (a for a in args if a != "--learn")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 has no default handler
    serve(Path(control), root, learn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
