"""The Dask executor: each step attempt is a task on a dask.distributed cluster.

A `LocalCluster` (worker processes on this machine) when no address is given, else the
scheduler at `tcp://host:port`. The task is `orchestrator.execution.remote.run_invocation`: plain
JSON in and out; the worker is given the artifact store's *location* (a folder, or an
`s3://` URL for workers that share no disk with this machine) and the metadata store's
URL, and opens both itself; small values ride inline in their references, in the
task's arguments and result. Before the first task on an external cluster every worker is
asked whether it sees a folder store (and a SQLite file): one that does not is one clear
error naming the store, never artifacts written where this machine cannot read them.

A worker that dies (or leaves the cluster unexpectedly) while it runs an attempt ends
that attempt: it fails with an error naming the worker, Dask is told to drop the task
(not to re-run it behind the engine's back), and the step's `retries` decide, as for a
process that dies under the process executor, so every attempt is recorded. The scheduler
reports the loss as a `remove-worker` event, which arrives as soon as the worker's
connection drops. A timeout releases the task.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.errors import ExecutorError
from orchestrator.execution.context import Registry
from orchestrator.execution.local import Executor
from orchestrator.execution.worker import StepInvocation, StepResult, pack_error
from orchestrator.model.step import Step


class DaskExecutor(Executor):
    name = "dask"
    in_process = False

    def __init__(
        self,
        artifacts: ArtifactStore,
        registry_factory: Callable[[], Registry] | None = None,
        echo: Callable[..., Any] | None = None,
        *,
        task: Callable[..., dict[str, Any]],
        address: str | None = None,
        db_url: str | None = None,
        n_workers: int = 2,
    ) -> None:
        """`task` is the worker entry point (`orchestrator.execution.remote.run_invocation`)."""
        super().__init__(artifacts, registry_factory, echo)
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ExecutorError(
                "the dask executor needs dask.distributed: pip install 'dask[distributed]'"
            ) from None
        self.db_url, self.task = db_url, task
        self._cluster = None
        try:
            if address:
                self.client = Client(
                    address, timeout=float(os.environ.get("ORCH_DASK_TIMEOUT", 10))
                )
            else:
                self._cluster = LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.CRITICAL,
                )
                self.client = Client(self._cluster)
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.location: str = artifacts.location
        self._tasks: dict[int, Any] = {}
        # a running task's key -> (the engine's future, the step's name)
        self._running: dict[str, tuple[cf.Future[StepResult], str]] = {}
        try:
            info = self.client.scheduler_info()
            self.workers = max(1, sum(w.get("nthreads", 1) for w in info["workers"].values()))
            if address:
                self._check_workers_see_the_stores()
            self.client.subscribe_topic("all", self._on_event)
        except BaseException:
            self.shutdown()
            raise

    def _check_workers_see_the_stores(self) -> None:
        """Raise one clear error when a worker cannot see a store given to it as a path."""
        paths = []
        if self.artifacts.is_local:  # a folder: created here, so a worker must see it
            os.makedirs(self.location, exist_ok=True)
            paths.append(("the artifact store", self.location, "ORCH_ARTIFACTS=s3://bucket/prefix"))
        sqlite = _sqlite_file(self.db_url)
        if sqlite is not None and os.path.exists(sqlite):
            paths.append(("the metadata store", sqlite, "ORCH_DB_URL=postgresql+psycopg://..."))
        for what, path, instead in paths:
            seen = self.client.run(os.path.exists, path)
            blind = sorted(addr for addr, ok in seen.items() if not ok)
            if blind:
                raise ExecutorError(
                    f"the Dask worker{'s' if len(blind) > 1 else ''} {', '.join(blind)} cannot "
                    f"see {what} {path}: workers that share no disk with this machine need "
                    f"{instead}"
                )

    async def _on_event(self, event: tuple[float, Any]) -> None:
        """On the client's event loop: fail the attempts a lost worker was running."""
        msg = event[1]
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
            return
        if msg.get("expected"):  # retired on purpose: Dask moves its tasks, nothing is lost
            return
        lost, worker = [], msg.get("worker")
        for key in msg.get("processing-tasks", ()):
            entry = self._running.pop(str(key), None)
            if entry is None:
                continue
            fut, name = entry
            task = self._tasks.pop(id(fut), None)
            if task is not None:
                lost.append(task)
            error = f"step '{name}': its Dask worker {worker} was lost during the attempt"
            _settle(fut, StepResult(False, [], error, None, "", 0.0))
        if lost:
            await self.client.cancel(lost, asynchronous=True)

    def submit(
        self, inv: StepInvocation, step: Step[Any], memo: dict[str, Any] | None
    ) -> cf.Future[StepResult]:
        fut: cf.Future[StepResult] = cf.Future()
        key = f"{inv.step}-{inv.run_id}-{inv.attempt}"
        self._running[key] = (fut, inv.step)
        task = self.client.submit(
            self.task, inv.to_json(), self.location, self.db_url, key=key, pure=False
        )
        self._tasks[id(fut)] = task

        def done(t: Any) -> None:
            self._tasks.pop(id(fut), None)
            self._running.pop(key, None)
            if fut.done():
                return
            try:
                result = StepResult.from_json(t.result())
            except BaseException as exc:  # noqa: BLE001 - a lost worker or a cancelled task
                why = pack_error(exc)[0]
                error = f"step '{inv.step}': its Dask task failed ({why})"
                result = StepResult(False, [], error, None, "", 0.0)
            _settle(fut, result)

        task.add_done_callback(done)
        return fut

    def kill(self, future: cf.Future[StepResult]) -> bool:
        """Release the task; a task already running on a worker cannot be stopped there."""
        task = self._tasks.pop(id(future), None)
        if task is not None:
            self._running.pop(str(task.key), None)
            task.cancel()
        return False

    def shutdown(self) -> None:
        try:
            # first: the scheduler would try to tell a closed client that it left
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic("all")
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


def _settle(fut: cf.Future[StepResult], result: StepResult) -> None:
    """The attempt's outcome, unless the other thread (task done, worker lost) was first."""
    with contextlib.suppress(cf.InvalidStateError):
        fut.set_result(result)


def _sqlite_file(db_url: str | None) -> str | None:
    """The database file of a `sqlite:///...` URL (None for any other URL, or in memory)."""
    if not db_url or not db_url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    return make_url(db_url).database or None
