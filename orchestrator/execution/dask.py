"""The Dask executor: each step attempt is a task on a dask.distributed cluster.

A `LocalCluster` (worker processes on this machine) when no address is given, else the
scheduler at `tcp://host:port`. The task is `orchestrator.execution.remote.run_invocation`: plain
JSON in and out, artifacts through the store every worker opens from its location (a
shared folder, or an `s3://` URL: then workers need no shared disk, only the same
credentials in their environment); small values ride inline in their references, in the
task's arguments and result. Dask may re-run a task
whose worker died (`allowed_failures`); once it gives up, the step fails with a clear
error naming it, so a dead worker never hangs a run. A timeout releases the task.
"""

from __future__ import annotations

import concurrent.futures as cf
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
        info = self.client.scheduler_info()
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info["workers"].values()))
        self._tasks: dict[int, Any] = {}

    def submit(
        self, inv: StepInvocation, step: Step[Any], memo: dict[str, Any] | None
    ) -> cf.Future[StepResult]:
        fut: cf.Future[StepResult] = cf.Future()
        task = self.client.submit(
            self.task,
            inv.to_json(),
            self.artifacts.location,
            self.db_url,
            key=f"{inv.step}-{inv.run_id}-{inv.attempt}",
            pure=False,
        )
        self._tasks[id(fut)] = task

        def done(t: Any) -> None:
            self._tasks.pop(id(fut), None)
            if fut.done():
                return
            try:
                fut.set_result(StepResult.from_json(t.result()))
            except BaseException as exc:  # noqa: BLE001 - a lost worker or a cancelled task
                why = pack_error(exc)[0]
                fut.set_result(
                    StepResult(
                        False, [], f"step '{inv.step}': its Dask task failed ({why})", None, "", 0.0
                    )
                )

        task.add_done_callback(done)
        return fut

    def kill(self, future: cf.Future[StepResult]) -> bool:
        """Release the task; a task already running on a worker cannot be stopped there."""
        task = self._tasks.pop(id(future), None)
        if task is not None:
            task.cancel()
        return False

    def shutdown(self) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
