"""Warm containers for the Docker executor: started once, each attempt a fresh process.

A `ContainerPool` keeps started containers per `PoolKey` (image, user, network, cpus,
memory, code mounts, the project folder for a step with a `FileInput`): the container's
settings, fixed at creation. Each runs
`orchestrator.execution.agent` as PID 1, with a read-only root filesystem, `/tmp` a
tmpfs, the artifact store mounted read-only at its host path, a work folder of its own
mounted read-write at `/orch/pool` and a control folder (the agent's Unix socket, under
the host's temp dir so its path stays short) at `/orch/ctl`. An attempt takes an idle
container (or starts one), gets a folder `/orch/pool/a-N`, and asks the agent over the
socket to run it.

Invariants: a container serves one attempt at a time; it goes back to the pool only when
the agent says it is fit for reuse (no OOM kill, no process left behind, a result
written) and nobody killed it meanwhile; anything else removes it. Every container of the
Docker executor, pooled or not, is listed with its `Reaper` from creation to removal, and
`close()` removes the pool's containers.

`prewarm(key, labels)` starts a container for a key in the background (the engine asks
as soon as a run has a step to compute that will run here, before it is ready): an
attempt that finds no idle container takes one being started rather than start another.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.execution.numerics import kernel_env, thread_env

POOL_WORK = "/orch/pool"
POOL_CTL = "/orch/ctl"
_READY_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class PoolKey:
    """What a container is created with; attempts with equal keys may share one."""

    image: str
    user: str
    network: bool
    cpus: float | None
    memory: str | None
    mounts: tuple[str, ...]
    data: tuple[str, ...] = ()  # read-only too, not on PYTHONPATH (`execution.fileinputs`)


@dataclasses.dataclass
class Warm:
    """One started container of the pool and its two host folders."""

    key: PoolKey
    container: Any
    control: Path
    work: Path
    attempts: int = 0
    killed: bool = False

    def attempt_folder(self) -> tuple[Path, str]:
        """A new, empty folder for the next attempt: its host path and its container path."""
        self.attempts += 1
        name = f"a-{self.attempts}"
        folder = self.work / name
        folder.mkdir(mode=0o777)
        os.chmod(folder, 0o777)
        return folder, f"{POOL_WORK}/{name}"


class AgentGone(Exception):
    """The agent closed the connection without a reply (killed, OOM, or it crashed)."""


class Reaper:
    """The runner's end of `orchestrator.execution.reaper`, started with the first
    container: it removes the containers listed here if the runner dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def _send(self, line: str) -> None:
        with self._lock:
            if self._proc is None:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "orchestrator.execution.reaper"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):  # it died: the containers are removed now
                self._proc.stdin.write(line.encode() + b"\n")
                self._proc.stdin.flush()

    def watch(self, container_id: str) -> None:
        self._send(f"+{container_id}")

    def forget(self, container_id: str) -> None:
        self._send(f"-{container_id}")

    def close(self) -> None:
        """End of file for the reaper: it removes what is left listed, then exits."""
        with self._lock:
            if self._proc is not None and self._proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self._proc.stdin.close()
            self._proc = None


class ContainerPool:
    """Idle containers per key, at most `idle` kept per key between attempts."""

    def __init__(
        self,
        client: Callable[[], Any],
        artifact_root: Path,
        scratch_root: Path,
        watch: Callable[[str], None],
        forget: Callable[[str], None],
        *,
        idle: int = 4,
    ) -> None:
        self._client, self.artifact_root, self.scratch_root = client, artifact_root, scratch_root
        self._watch, self._forget = watch, forget
        self.idle_per_key = idle
        self._lock = threading.Lock()
        self._idle: dict[PoolKey, list[Warm]] = {}
        self._busy: set[int] = set()
        self._starting: dict[PoolKey, list[cf.Future[Warm]]] = {}
        self._all: dict[int, Warm] = {}
        self.started = 0  # containers started over the pool's life
        self._sweeper: cf.ThreadPoolExecutor | None = None

    # -- taking and giving back ------------------------------------------------------------
    def acquire(self, key: PoolKey, labels: dict[str, str]) -> Warm:
        with self._lock:
            idle = self._idle.get(key, [])
            if idle:
                warm = idle.pop()
                self._busy.add(id(warm))
                return warm
            starting = self._starting.get(key, [])
            coming = starting.pop() if starting else None
        warm = self._started(coming) if coming is not None else None
        warm = warm or self._start(key, labels)
        with self._lock:
            self._busy.add(id(warm))
        return warm

    def prewarm(self, key: PoolKey, labels: dict[str, str], count: int = 1) -> None:
        """Have `count` containers for `key` idle or starting; start the rest now in the
        background (an attempt then takes one, see `acquire`)."""
        with self._lock:
            have = len(self._idle.get(key, [])) + len(self._starting.get(key, []))
            for _ in range(min(count, self.idle_per_key) - have):
                fut: cf.Future[Warm] = cf.Future()
                self._starting.setdefault(key, []).append(fut)
                threading.Thread(
                    target=self._start_into, args=(key, labels, fut), daemon=True
                ).start()

    def _start_into(self, key: PoolKey, labels: dict[str, str], fut: cf.Future[Warm]) -> None:
        try:
            fut.set_result(self._start(key, labels))
        except BaseException as exc:  # noqa: BLE001 - the attempt that takes it starts its own
            fut.set_exception(exc)
            return
        with self._lock:
            if fut not in self._starting.get(key, []):
                return  # taken by an attempt, which waits on it
            self._starting[key].remove(fut)
            self._idle.setdefault(key, []).append(fut.result())

    def _started(self, fut: cf.Future[Warm]) -> Warm | None:
        """The container a prewarm is starting, once ready; None if it failed to start."""
        try:
            return fut.result()
        except Exception:  # noqa: BLE001 - the caller starts one itself and reports that
            return None

    def release(self, warm: Warm, reuse: bool) -> None:
        with self._lock:
            self._busy.discard(id(warm))
            idle = self._idle.setdefault(warm.key, [])
            keep = reuse and not warm.killed and len(idle) < self.idle_per_key
            if keep:
                idle.append(warm)
        if not keep:
            self.discard(warm)

    def discard(self, warm: Warm) -> None:
        """Remove the container now (it may be running an attempt) and its folders."""
        warm.killed = True
        with self._lock:
            self._all.pop(id(warm), None)
            self._busy.discard(id(warm))
            with contextlib.suppress(ValueError):
                self._idle.get(warm.key, []).remove(warm)
        with contextlib.suppress(Exception):  # already gone
            warm.container.remove(force=True)
        self._forget(warm.container.id)
        shutil.rmtree(warm.control, ignore_errors=True)
        shutil.rmtree(warm.work, ignore_errors=True)

    def remove_later(self, folder: Path) -> None:
        """Remove an attempt's folder off the step's path (its result is read already)."""
        with self._lock:
            if self._sweeper is None:
                self._sweeper = cf.ThreadPoolExecutor(1, thread_name_prefix="orch-pool-sweep")
            self._sweeper.submit(shutil.rmtree, folder, ignore_errors=True)

    def close(self) -> None:
        """Remove every container of the pool, idle or busy, and the folders of its
        attempts."""
        with self._lock:
            starting = [f for futs in self._starting.values() for f in futs]
            self._starting.clear()
        cf.wait(starting, timeout=_READY_TIMEOUT)  # then they are listed in `_all`
        with self._lock:
            everything = list(self._all.values())
            sweeper, self._sweeper = self._sweeper, None
        for warm in everything:
            self.discard(warm)
        if sweeper is not None:
            sweeper.shutdown(wait=True)

    # -- talking to the agent --------------------------------------------------------------
    def request(self, warm: Warm, message: dict[str, Any]) -> dict[str, Any]:
        """One request to the agent and its reply; `AgentGone` if it ends without one."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(warm.control / "agent.sock"))
            except OSError as exc:
                raise AgentGone(f"cannot reach the container's agent: {exc}") from None
            with sock.makefile("rwb") as stream:
                stream.write(json.dumps(message).encode() + b"\n")
                stream.flush()
                line = stream.readline()
        if not line:
            raise AgentGone("the container's agent ended without a reply")
        reply: dict[str, Any] = json.loads(line)
        return reply

    # -- starting a container --------------------------------------------------------------
    def _start(self, key: PoolKey, labels: dict[str, str]) -> Warm:
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="pool-", dir=self.scratch_root))
        control = Path(tempfile.mkdtemp(prefix="orch-ctl-"))
        for folder in (work, control):
            os.chmod(folder, 0o777)
        try:
            container = self._create(key, labels, work, control)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(control, ignore_errors=True)
            raise
        warm = Warm(key, container, control, work)
        with self._lock:
            self._all[id(warm)] = warm
        self.started += 1
        try:
            self._wait_ready(warm)
        except BaseException:
            self.discard(warm)
            raise
        return warm

    def _create(self, key: PoolKey, labels: dict[str, str], work: Path, control: Path) -> Any:
        client = self._client()
        client.images.get(key.image)  # ImageNotFound here: never pull from a registry
        root = str(self.artifact_root)
        volumes = {
            root: {"bind": root, "mode": "ro"},
            str(work): {"bind": POOL_WORK, "mode": "rw"},
            str(control): {"bind": POOL_CTL, "mode": "rw"},
            **{m: {"bind": m, "mode": "ro"} for m in (*key.mounts, *key.data)},
        }
        # the kernels at the container's start: the agent's preloaded libraries keep them
        env = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", **kernel_env()}
        env |= thread_env(key.cpus)
        if key.mounts:
            env["PYTHONPATH"] = os.pathsep.join(key.mounts)
        cmd = ["python3", "-m", "orchestrator.execution.agent", POOL_CTL, root]
        if key.memory is None:
            cmd.append("--learn")
        kwargs: dict[str, Any] = {
            "user": key.user,
            "environment": env,
            "volumes": volumes,
            "working_dir": POOL_WORK,
            "labels": {**labels, "orchestrator.pool": "1"},
            "read_only": True,
            "tmpfs": {"/tmp": "rw,mode=1777"},
        }
        if key.network:
            kwargs["network_mode"] = "host"
        else:
            kwargs["network_disabled"] = True
        if key.cpus is not None:
            kwargs["nano_cpus"] = int(key.cpus * 1e9)
        if key.memory is not None:
            kwargs["mem_limit"] = kwargs["memswap_limit"] = key.memory
        container = client.containers.create(key.image, cmd, **kwargs)
        self._watch(container.id)
        container.start()
        return container

    def _wait_ready(self, warm: Warm) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        delay = 0.005
        while True:
            if (warm.control / "agent.sock").exists():
                with contextlib.suppress(AgentGone):
                    self.request(warm, {"op": "ping"})
                    return
            if time.monotonic() > deadline or warm.killed:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            if delay == 0.05:
                warm.container.reload()
                if warm.container.status not in ("created", "running"):
                    break
        logs = warm.container.logs().decode(errors="replace")[-2000:]
        raise AgentGone(f"the container's agent did not start; its output:\n{logs}")
