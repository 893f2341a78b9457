"""The Docker executor: each step attempt in a container on a real Docker engine.

By default an attempt is a fresh process in a warm container of the executor's
`ContainerPool` (`orchestrator.execution.pool`): containers are started once per image
and settings and kept between attempts, and the agent inside forks a process per attempt
and cleans up after it; a container that misbehaves (OOM kill, timeout, a process left
behind, an exit without a result) is removed, never reused. With the hint `pool=False`,
`keep_failed`, `DockerExecutor(pool=False)` or `ORCH_DOCKER_POOL=0`, the attempt gets a
container of its own, created and removed around it.

Either way the step runs through our worker entry point (`orchestrator.execution.remote`),
which reads its inputs from the artifact store, mounted read-only at the same path as on
the host, and writes its outputs to a scratch folder; the executor then verifies each
output's hash and moves it into the store (the store's `adopt`). A small output (see
`artifacts.store`) is no file: it comes back inline in the result, and an inline input
travels in the invocation. No pickles cross the socket and nothing
depends on the host's virtualenv.

With the artifacts in object storage (`ORCH_ARTIFACTS=s3://...`) a container still has
no network and never sees a credential: the folder mounted in the store's place is a
`Staging` folder (`orchestrator.execution.staging`) into which each attempt's file
inputs are downloaded and hash-checked before the attempt starts (a missing or corrupt
object fails the step, naming the input, and no container sees it), and the outputs go
up from the scratch folder with the object store's `adopt` (checked, then uploaded so
that a torn upload is never visible).

A `FileInput` given by a path relative to the project folder (where the run started) is
found in the container at that same relative path, read-only, as on the host: the project
folder is mounted read-only and the attempt's working folder links to the file
(`orchestrator.execution.fileinputs`); a file no container could see fails the step.

A container gets the host's choice of numerical kernels (`OPENBLAS_CORETYPE` and the like,
`orchestrator.execution.numerics`), so a step gives the bytes there it gives on the host.

Per step, from `@step(hints={...})`: `image` (else the executor's default image), `env`,
`cpus` (BLAS and OpenMP then get as many threads, unless `env` says otherwise),
`memory` (e.g. "256m"), `network` (off unless True), `user` (default
`65534:65534`, nobody), `keep_failed` (keep a failed container for inspection), `pool`.
Which steps of a Docker run go to a container at all (a step without an image, or one that
talks to the embedded SQLite store, runs on the local thread pool) is decided by
`orchestrator.engine.routing`; this executor runs what it is given. A timeout removes the
container. Every failure names the
step: image not found, engine unreachable, OOM-killed, non-zero exit with the last lines.

A container never outlives its runner: each is listed with a small reaper process
(`orchestrator.execution.reaper`) from its creation until it is removed, and the reaper
removes what is still listed when the runner ends, even by SIGKILL; `shutdown()` removes
the pool's containers when the run ends.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.artifacts.store import ArtifactRef, ArtifactStore
from orchestrator.errors import ArtifactError
from orchestrator.execution.context import Registry
from orchestrator.execution.fileinputs import Unreachable, data_mounts, links, place
from orchestrator.execution.local import Executor
from orchestrator.execution.numerics import kernel_env, thread_env
from orchestrator.execution.pool import AgentGone, ContainerPool, PoolKey, Reaper, Warm
from orchestrator.execution.staging import Staging
from orchestrator.execution.worker import StepInvocation, StepResult
from orchestrator.model.step import Step

NOBODY = "65534:65534"
_TAIL = 20


def _fail(inv: StepInvocation, message: str, log: str = "", t0: float | None = None) -> StepResult:
    took = time.perf_counter() - t0 if t0 else 0.0
    return StepResult(False, [], f"step '{inv.step}': {message}", None, log, took)


def _stop(container: Any, keep: bool) -> bool:
    """Kill a container now and, unless it is to be kept, remove it now too: the run may
    end, and its process exit, before the thread watching the container gets to it."""
    try:
        if keep:
            container.kill()
        else:
            container.remove(force=True)
    except Exception:  # noqa: BLE001 - it may have exited, or been removed, already
        return False
    return True


def _keep(step: Step[Any]) -> bool:
    """Whether a failed attempt's container is kept for inspection (then never pooled)."""
    return bool(step.hints.get("keep_failed")) or os.environ.get("ORCH_DOCKER_KEEP_FAILED") == "1"


def _gone(warm: Warm) -> dict[str, Any]:
    """The reply for an agent that ended without one: killed by us, OOM, or it crashed."""
    if warm.killed:
        return {"code": 137, "oom": False}
    try:
        code = warm.container.wait(timeout=10).get("StatusCode", -1)
        warm.container.reload()
        oom = bool(warm.container.attrs.get("State", {}).get("OOMKilled", False))
    except Exception:  # noqa: BLE001 - removed meanwhile, or the engine is gone
        code, oom = -1, False
    return {"code": code, "oom": oom}


def _code_mounts(step: Step[Any], step_ref: str) -> list[str]:
    """Host folders holding the user's code for this step (mounted read-only, same path)."""
    where = step_ref.rpartition(":")[0]
    if where.endswith(".py"):
        return [str(Path(where).parent)]
    mod = sys.modules.get(step.fn.__module__)
    file = getattr(mod, "__file__", None)
    top = step.fn.__module__.split(".")[0]
    if not file or top == "orchestrator" or "site-packages" in file or "dist-packages" in file:
        return []  # installed in the image
    root = Path(file).parent
    for _ in range(step.fn.__module__.count(".") + (Path(file).name == "__init__.py")):
        root = root.parent
    return [str(root)]


class DockerExecutor(Executor):
    name = "docker"
    in_process = False

    def __init__(
        self,
        artifacts: ArtifactStore,
        registry_factory: Callable[[], Registry] | None = None,
        echo: Callable[..., Any] | None = None,
        *,
        image: str | None = None,
        db_url: str | None = None,
        pool: bool | None = None,
    ) -> None:
        super().__init__(artifacts, registry_factory, echo)
        self.image, self.db_url = image, db_url
        self.pooled = pool if pool is not None else os.environ.get("ORCH_DOCKER_POOL") != "0"
        self.workers = os.cpu_count() or 2
        self._client: Any = None
        self._lock = threading.Lock()
        self._containers: dict[int, Any] = {}
        self._keep: set[int] = set()  # futures whose container is kept if it fails
        self._reaper = Reaper()
        self.staging: Staging | None = None
        if artifacts.is_local:  # mounted read-only as it is
            self.mount_root = Path(artifacts.root).resolve()
            self.scratch_root = self.mount_root.parent / ".scratch"
        else:  # object storage: each attempt's inputs staged in a local folder
            base = Path(tempfile.mkdtemp(prefix="orch-docker-")).resolve()
            self.mount_root, self.scratch_root = base / "inputs", base / ".scratch"
            os.chmod(base, 0o755)  # the containers' user reaches the folders below
            self.mount_root.mkdir(mode=0o755)
            self.staging = Staging(artifacts, self.mount_root)
        self.pool = ContainerPool(
            self.client,
            self.mount_root,
            self.scratch_root,
            self._reaper.watch,
            self._reaper.forget,
        )
        self._warm: dict[int, Warm] = {}  # futures running in a pooled container

    # -- engine connection ---------------------------------------------------------------
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import docker

                client = docker.from_env(timeout=120)
                client.ping()
                self._client = client
            return self._client

    def submit(
        self, inv: StepInvocation, step: Step[Any], memo: dict[str, Any] | None
    ) -> cf.Future[StepResult]:
        fut: cf.Future[StepResult] = cf.Future()
        threading.Thread(
            target=self._run, args=(fut, inv, step), daemon=True, name=f"orch-docker-{inv.step}"
        ).start()
        return fut

    # -- one container -------------------------------------------------------------------
    def _run(self, fut: cf.Future[StepResult], inv: StepInvocation, step: Step[Any]) -> None:
        t0 = time.perf_counter()
        try:
            result = self._container_attempt(fut, inv, step, t0)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the step's error
            result = _fail(inv, f"Docker executor error: {type(exc).__name__}: {exc}", t0=t0)
        if not fut.done():
            fut.set_result(result)

    def _container_attempt(
        self, fut: cf.Future[StepResult], inv: StepInvocation, step: Step[Any], t0: float
    ) -> StepResult:
        import docker.errors

        image = str(step.hints.get("image") or self.image)
        try:
            client = self.client()
        except docker.errors.DockerException as exc:
            where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
            return _fail(inv, f"cannot reach the Docker engine at {where}: {exc}", t0=t0)
        try:
            staged = self.staging.stage(inv.inputs) if self.staging is not None else []
        except ArtifactError as exc:  # never fed to the container
            return _fail(inv, str(exc), t0=t0)
        try:
            if self._pooled(step):
                return self._pooled_attempt(fut, inv, step, image, t0)
            return self._fresh_attempt(client, fut, inv, step, image, t0)
        except docker.errors.ImageNotFound:
            return _fail(
                inv,
                f"Docker image '{image}' not found; build it with `orch image build --tag {image}`",
                t0=t0,
            )
        except docker.errors.APIError as exc:
            return _fail(inv, f"Docker engine error: {exc.explanation or exc}", t0=t0)
        finally:
            if self.staging is not None:
                self.staging.release(staged)

    def _pooled(self, step: Step[Any]) -> bool:
        return self.pooled and step.hints.get("pool", True) is not False and not _keep(step)

    def _fresh_attempt(
        self,
        client: Any,
        fut: cf.Future[StepResult],
        inv: StepInvocation,
        step: Step[Any],
        image: str,
        t0: float,
    ) -> StepResult:
        """The attempt in a container of its own, removed after it."""
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{inv.step}-", dir=self.scratch_root))
        try:
            return self._in_scratch(client, fut, inv, step, image, scratch, t0)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    # -- a warm container of the pool ----------------------------------------------------
    def _pool_key(self, step: Step[Any], image: str, mounts: list[str]) -> PoolKey:
        hints = step.hints
        cpus = float(hints["cpus"]) if "cpus" in hints else None
        memory = str(hints["memory"]) if "memory" in hints else None
        network = self._env_and_network(step)[1]
        user = str(hints.get("user", NOBODY))
        data = data_mounts(step, mounts)
        return PoolKey(image, user, network, cpus, memory, tuple(mounts), data)

    def prewarm(self, steps: list[Step[Any]], run_id: str) -> None:
        """Start in the background a warm container for each settings `steps` will run
        with, unless one is idle or starting: its start-up overlaps the steps before."""
        wanted: dict[PoolKey, list[Step[Any]]] = {}
        for step in steps:
            if self._pooled(step):
                image = str(step.hints.get("image") or self.image)
                key = self._pool_key(step, image, _code_mounts(step, step.ref))
                wanted.setdefault(key, []).append(step)
        if not wanted:
            return
        try:
            self.client()
        except Exception:  # noqa: BLE001 - the step's own attempt reports the engine's error
            return
        for key, group in wanted.items():
            labels = {"orchestrator.model.step": group[0].name, "orchestrator.engine": run_id}
            self.pool.prewarm(key, labels)

    def _pooled_attempt(
        self,
        fut: cf.Future[StepResult],
        inv: StepInvocation,
        step: Step[Any],
        image: str,
        t0: float,
    ) -> StepResult:
        """The attempt as a fresh process in a warm container; the container goes back to
        the pool only if the agent vouches for it."""
        key = self._pool_key(step, image, _code_mounts(step, inv.step_ref))
        try:
            found = links(step, inv.params, [*key.mounts, *key.data, self.mount_root])
        except Unreachable as exc:
            return _fail(inv, str(exc), t0=t0)
        labels = {"orchestrator.model.step": step.name, "orchestrator.engine": inv.run_id}
        warm = self.pool.acquire(key, labels)
        self._warm[id(fut)] = warm
        reuse, folder = False, Path()
        try:
            folder, inside = warm.attempt_folder()
            place(found, folder / "work")  # the agent's child works there
            (folder / "invocation.json").write_text(json.dumps(inv.to_json()))
            env = self._env_and_network(step)[0]
            try:
                reply = self.pool.request(warm, {"op": "run", "dir": inside, "env": env})
            except AgentGone:
                reply = _gone(warm)
            log = folder / "output.log"
            output = log.read_text(errors="replace") if log.exists() else ""
            reuse = bool(reply.get("reuse")) and not warm.killed
            code, oom = int(reply["code"]), bool(reply["oom"])
            return self._result(inv, step, folder, code, oom, output, t0)
        finally:
            self._warm.pop(id(fut), None)
            self.pool.release(warm, reuse)
            if folder.name:  # made: remove it with what the attempt left there
                self.pool.remove_later(folder)

    def _env_and_network(self, step: Step[Any]) -> tuple[dict[str, str], bool]:
        """The attempt's environment (beyond the image's) and whether it has the network."""
        hints = step.hints
        env = {"PYTHONUNBUFFERED": "1", **kernel_env()}
        env |= {k: str(v) for k, v in hints.get("env", {}).items()}
        network = bool(hints.get("network"))
        if hints.get("store") and self.db_url and not self.db_url.startswith("sqlite"):
            env["ORCH_DB_URL"] = self.db_url
            network = True
        return env, network

    def _run_kwargs(self, step: Step[Any], scratch: Path) -> dict[str, Any]:
        hints = step.hints
        root = str(self.mount_root)
        Path(root).mkdir(parents=True, exist_ok=True)
        volumes = {
            root: {"bind": root, "mode": "ro"},
            str(scratch): {"bind": "/orch/scratch", "mode": "rw"},
        }
        env, network = self._env_and_network(step)
        cpus = float(hints["cpus"]) if "cpus" in hints else None
        env = {**thread_env(cpus), **env, "HOME": "/tmp"}
        kwargs: dict[str, Any] = {
            "detach": True,
            "user": str(hints.get("user", NOBODY)),
            "environment": env,
            "volumes": volumes,
            "working_dir": "/orch/scratch/work",
            "labels": {"orchestrator.model.step": step.name},  # and the run, added by the caller
        }
        if network:
            kwargs["network_mode"] = "host"
        else:
            kwargs["network_disabled"] = True
        if "cpus" in hints:
            kwargs["nano_cpus"] = int(float(hints["cpus"]) * 1e9)
        if "memory" in hints:
            kwargs["mem_limit"] = hints["memory"]
            kwargs["memswap_limit"] = hints["memory"]
        return kwargs

    def _in_scratch(
        self,
        client: Any,
        fut: cf.Future[StepResult],
        inv: StepInvocation,
        step: Step[Any],
        image: str,
        scratch: Path,
        t0: float,
    ) -> StepResult:
        os.chmod(scratch, 0o777)
        (scratch / "invocation.json").write_text(json.dumps(inv.to_json()))
        kwargs = self._run_kwargs(step, scratch)
        kwargs["labels"]["orchestrator.engine"] = inv.run_id
        mounts = _code_mounts(step, inv.step_ref)
        data = data_mounts(step, mounts)
        try:
            found = links(step, inv.params, [*mounts, *data, self.mount_root])
        except Unreachable as exc:
            return _fail(inv, str(exc), t0=t0)
        place(found, scratch / "work")
        for folder in (*mounts, *data):
            kwargs["volumes"][folder] = {"bind": folder, "mode": "ro"}
        if mounts:
            kwargs["environment"]["PYTHONPATH"] = os.pathsep.join(mounts)
        root = str(self.mount_root)
        cmd = [
            "python3",
            "-m",
            "orchestrator.execution.remote",
            "/orch/scratch/invocation.json",
            "/orch/scratch/result.json",
            "--artifacts",
            root,
            "--out",
            "/orch/scratch/out",
        ]
        client.images.get(image)  # ImageNotFound here: never pull from a registry
        kwargs.pop("detach")
        container = client.containers.create(image, cmd, **kwargs)
        self._reaper.watch(container.id)  # removed if this process dies before it does
        keep = _keep(step)
        container.start()
        self._containers[id(fut)] = container
        if keep:
            self._keep.add(id(fut))
        try:
            output = "".join(
                c.decode(errors="replace") for c in container.logs(stream=True, follow=True)
            )
            code = container.wait().get("StatusCode", -1)
            container.reload()
            oom = container.attrs.get("State", {}).get("OOMKilled", False)
        finally:
            self._containers.pop(id(fut), None)
            self._keep.discard(id(fut))
        result = self._result(inv, step, scratch, code, oom, output, t0)
        if result.ok or not keep:
            container.remove(force=True)
        else:
            result.error = f"{result.error}\n(container {container.short_id} kept for inspection)"
        self._reaper.forget(container.id)
        return result

    def _result(
        self,
        inv: StepInvocation,
        step: Step[Any],
        scratch: Path,
        code: int,
        oom: bool,
        output: str,
        t0: float,
    ) -> StepResult:
        tail = "\n".join(output.rstrip().splitlines()[-_TAIL:])
        if oom:
            limit = step.hints.get("memory", "its memory limit")
            return _fail(inv, f"container was OOM-killed (memory limit {limit})", output, t0)
        path = scratch / "result.json"
        if not path.exists():
            if code in (137, -9):
                return _fail(inv, f"container was killed (exit code {code})", output, t0)
            return _fail(
                inv, f"container exited with code {code}; last log lines:\n{tail}", output, t0
            )
        result = StepResult.from_json(json.loads(path.read_text()))
        result.log = result.log + (f"[container output]\n{output}" if output.strip() else "")
        result.duration = time.perf_counter() - t0
        out = ArtifactStore(scratch / "out")
        logged = [ArtifactRef.from_json(a) for a in (result.tracked or {}).get("artifacts", [])]
        for ref in [*(result.outputs if result.ok else []), *logged]:
            if ref.data is None:  # an inline output came back in the result itself
                self.artifacts.adopt(out.path(ref), ref)
        return result

    def kill(self, future: cf.Future[StepResult]) -> bool:
        warm = self._warm.get(id(future))
        if warm is not None:
            self.pool.discard(warm)
            return True
        container = self._containers.get(id(future))
        if container is None:
            return False
        return _stop(container, keep=id(future) in self._keep)

    def shutdown(self) -> None:
        for key, container in list(self._containers.items()):
            _stop(container, keep=key in self._keep)
        self.pool.close()
        self._reaper.close()
        if self.staging is not None:
            self.staging.close()
