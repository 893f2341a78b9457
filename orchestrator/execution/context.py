"""The run context a step may ask for with `orchestrator.current()`.

It tells a running step who it is (run id, step name, pipeline and its parameters, the
content hashes of its inputs), gives it a logger whose lines are stored with the step
run, reaches the model registry, and tracks metrics, parameters and artifacts
(`log_metric`, `log_params`, `log_artifact`: see orchestrator/tracking.py). Outside a
step, `current()` raises.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

from orchestrator.errors import ExecutorError
from orchestrator.tracking import Tracker


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
    tracker: Tracker | None = None

    def _tracking(self) -> Tracker:
        if self.tracker is None:
            self.tracker = Tracker(self.step)
        return self.tracker

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Record a metric of this run (a point of the series `name` when `step` is given)."""
        self._tracking().log_metric(name, value, step)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """`log_metric` for each name -> value."""
        self._tracking().log_metrics(metrics, step)

    def log_params(self, params: dict[str, Any] | None = None, **more: Any) -> None:
        """Record parameters of this run (JSON-able values), as a dict or keywords."""
        self._tracking().log_params(params, **more)

    def log_artifact(self, value_or_path: Any, name: str) -> dict[str, Any]:
        """Store a value, or a file's bytes for a path, as this run's artifact `name`."""
        return self._tracking().log_artifact(value_or_path, name)

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
