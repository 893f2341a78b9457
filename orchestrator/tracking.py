"""Experiment tracking inside a step: metrics, parameters and named artifacts.

A running step calls `current().log_metric(name, value, step=None)` (a series when
`step` is given), `current().log_params(...)` and `current().log_artifact(value, name)`.
Executors cannot reach the metadata store (a container or a Dask worker has none), so a
`Tracker` only collects: what it holds crosses the executor boundary as plain JSON inside
the step's result (`Tracked`), and the engine records it with the step's row, in the same
batch. Invariants: a metric value is a finite real number, a name is non-empty text of at
most 200 characters, a parameter value is JSON-able; bad input raises one `ParamError`
naming the step and the name, at the call, so a typo never passes silently.

Returned metrics: an output of type `Metrics` (a dict of name -> number), and a flat dict
of name -> number returned by a step of kind `evaluate`, are recorded as the step's
metrics as well, with no call needed.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import ParamError

MAX_NAME = 200


class Metrics(dict[str, float]):
    """A step output whose values are recorded as the run's metrics (name -> number)."""


@dataclasses.dataclass
class Tracked:
    """What one step attempt logged, as plain JSON-able data (crosses every executor)."""

    metrics: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.metrics or self.params or self.artifacts)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Tracked:
        d = d or {}
        return cls(
            list(d.get("metrics", [])), dict(d.get("params", {})), list(d.get("artifacts", []))
        )


def _name(step: str, what: str, name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ParamError(f"step '{step}': {what} needs a non-empty name, got {name!r}")
    if len(name) > MAX_NAME:
        raise ParamError(f"step '{step}': {what} name '{name[:40]}...' is over {MAX_NAME} chars")
    return name


def _number(step: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParamError(
            f"step '{step}': metric '{name}' must be a number, got {type(value).__name__}"
        )
    number = float(value)
    if not math.isfinite(number):
        raise ParamError(f"step '{step}': metric '{name}' must be finite, got {number}")
    return number


def _position(step: str, name: str, position: Any) -> int | None:
    if position is None:
        return None
    if isinstance(position, bool) or not isinstance(position, numbers.Integral):
        raise ParamError(
            f"step '{step}': metric '{name}' step must be an integer, got {position!r}"
        )
    return int(position)


class Tracker:
    """Collects one step attempt's metrics, parameters and artifacts.

    `put(value)` stores a value in the artifact store the step writes to and returns its
    reference as JSON; `canonical(value)` makes a parameter value plain JSON (or raises).
    """

    def __init__(
        self,
        step: str,
        put: Callable[[Any], dict[str, Any]] | None = None,
        canonical: Callable[[Any], Any] | None = None,
    ) -> None:
        self.step, self._put, self._canonical = step, put, canonical
        self.tracked = Tracked()

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        name = _name(self.step, "log_metric", name)
        point = {
            "name": name,
            "value": _number(self.step, name, value),
            "step": _position(self.step, name, step),
        }
        self.tracked.metrics.append(point)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for name, value in metrics.items():
            self.log_metric(name, value, step)

    def log_params(self, params: Mapping[str, Any] | None = None, **more: Any) -> None:
        for name, value in {**(params or {}), **more}.items():
            name = _name(self.step, "log_params", name)
            try:
                plain = self._canonical(value) if self._canonical is not None else value
            except Exception as exc:  # noqa: BLE001 - any unserializable value: one line
                raise ParamError(
                    f"step '{self.step}': parameter '{name}' cannot be recorded: {exc}"
                ) from None
            self.tracked.params[name] = plain

    def log_artifact(self, value_or_path: Any, name: str) -> dict[str, Any]:
        """Store a value (or the bytes of a file, for a path) as an artifact named `name`."""
        name = _name(self.step, "log_artifact", name)
        if self._put is None:
            raise ParamError(f"step '{self.step}': log_artifact has no artifact store here")
        value = value_or_path
        if isinstance(value_or_path, Path | str) and Path(value_or_path).is_file():
            value = Path(value_or_path).read_bytes()
        ref = self._put(value)
        self.tracked.artifacts.append({"name": name, **ref})
        return ref

    def returned(self, values: list[Any], kind: str) -> list[Any]:
        """Record returned metrics (`Metrics` outputs, an evaluate step's number dicts);
        the values to store: a `Metrics` is stored as the plain dict it is."""
        for value in values:
            if isinstance(value, Metrics) or (kind == "evaluate" and _number_dict(value)):
                self.log_metrics(value)
        return [dict(v) if isinstance(v, Metrics) else v for v in values]


def _number_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(
            isinstance(k, str) and isinstance(v, numbers.Real) and not isinstance(v, bool)
            for k, v in value.items()
        )
    )
