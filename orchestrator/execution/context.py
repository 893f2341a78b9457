"""The run context a step may ask for with `orchestrator.current()`.

It tells a running step who it is (run id, step name, pipeline and its parameters, the
content hashes of its inputs), gives it a logger whose lines are stored with the step
run, and reaches the model registry. Outside a step, `current()` raises.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

from orchestrator.errors import ExecutorError


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: int
    stage: str  # candidate | production | archived
    artifact_hash: str
    metrics: dict[str, float]
    run_id: str | None
    step: str | None
    params: dict[str, Any]
    data_hash: str | None
    reason: str
    created_at: dt.datetime


class Registry(Protocol):
    """The model registry as steps see it."""

    def production(self, name: str) -> ModelVersion | None: ...

    def register(
        self,
        name: str,
        *,
        artifact_hash: str,
        metrics: dict[str, float],
        run_id: str | None,
        step: str | None,
        params: dict[str, Any],
        data_hash: str | None,
        reason: str = "",
    ) -> ModelVersion: ...

    def promote(
        self,
        name: str,
        version: int,
        reason: str,
        *,
        actor: str = "api",
        run_id: str | None = None,
        step: str | None = None,
    ) -> ModelVersion: ...

    def load(self, version: ModelVersion) -> Any: ...


class StepLogger(Protocol):
    def info(self, event: str, **kw: Any) -> Any: ...
    def warning(self, event: str, **kw: Any) -> Any: ...
    def error(self, event: str, **kw: Any) -> Any: ...
    def debug(self, event: str, **kw: Any) -> Any: ...


@dataclasses.dataclass
class RunContext:
    run_id: str
    step: str
    pipeline: str
    params: dict[str, Any]
    input_hashes: dict[str, str]
    log: StepLogger
    attempt: int = 1
    scheduled_time: dt.datetime | None = None
    registry_factory: Callable[[], Registry] | None = None
    _registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            if self.registry_factory is None:
                raise ExecutorError(f"step '{self.step}': no model registry is available here")
            self._registry = self.registry_factory()
        return self._registry


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "run_context", default=None
)


def current() -> RunContext:
    """The context of the step being run; raises outside a step."""
    ctx = _current.get()
    if ctx is None:
        raise ExecutorError("orchestrator.current() was called outside a running step")
    return ctx


def activate(ctx: RunContext | None) -> contextvars.Token[RunContext | None]:
    return _current.set(ctx)


def deactivate(token: contextvars.Token[RunContext | None]) -> None:
    _current.reset(token)
