"""Making an executor by name: the local pools, Dask and Docker (imported only when asked).

This only builds executors; which executor runs a given step is decided in one place,
`orchestrator.engine.routing`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.errors import ExecutorError
from orchestrator.execution.context import Registry
from orchestrator.execution.local import EXECUTORS, Executor

NAMES = (*EXECUTORS, "dask", "docker")


def make_executor(
    name: str,
    artifacts: ArtifactStore,
    *,
    registry_factory: Callable[[], Registry] | None = None,
    options: dict[str, Any] | None = None,
) -> Executor:
    """An executor by name; `options` holds backend settings (dask_address, image, db_url)."""
    options = options or {}
    if name in EXECUTORS:
        return EXECUTORS[name](artifacts, registry_factory)
    if name == "dask":
        from orchestrator.execution.dask import DaskExecutor
        from orchestrator.execution.remote import run_invocation

        return DaskExecutor(
            artifacts,
            registry_factory,
            task=run_invocation,
            address=options.get("dask_address"),
            db_url=options.get("db_url"),
        )
    if name == "docker":
        from orchestrator.execution.docker import DockerExecutor

        return DockerExecutor(
            artifacts,
            registry_factory,
            image=options.get("image"),
            db_url=options.get("db_url"),
        )
    raise ExecutorError(f"unknown executor '{name}'; choose one of {', '.join(NAMES)}")
