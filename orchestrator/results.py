"""What a run is, seen from Python: `Run` (status, steps, values, explanations, the
`orch run --json` document, tracked metrics and parameters) and `StepRun`, made from the
engine's result of a fresh run (`from_result`) or from the metadata store's rows of an
earlier one (`history`).

Invariants: a `Run` holds no open store; values load from the artifact store on demand and
are verified as every read is; a name that is not there is one `NotFound` with a
suggestion, and a failed step's output is its `StepFailed` (or `StepTimeout`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.artifacts.store import ArtifactRef
from orchestrator.errors import (
    ArtifactError,
    NotFound,
    StepFailed,
    StepTimeout,
    did_you_mean,
)
from orchestrator.model.graph import Graph


@dataclasses.dataclass(frozen=True)
class StepRun:
    """One step of a run: its state, timing, cache key, why it ran, and its outputs."""

    name: str
    kind: str
    state: str
    duration: float
    attempts: int
    cache_key: str | None
    reason: dict[str, Any]
    error: str | None
    outputs: list[ArtifactRef]
    output_names: list[str]

    def to_json(self) -> dict[str, Any]:
        """This step in the document `orch run --json` prints."""
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "duration": round(self.duration, 4),
            "attempts": self.attempts,
            "cache_key": self.cache_key,
            "reason": self.reason.get("summary"),
            "error": self.error,
            "outputs": [
                o.to_json() | {"name": n}
                for o, n in zip(self.outputs, self.output_names, strict=True)
            ],
        }


class Run:
    """A finished run (just made, or read from the store). Values load on demand."""

    def __init__(
        self,
        doc: dict[str, Any],
        steps: list[StepRun],
        artifacts: Any,
        params: dict[str, Any] | None = None,
        tracked: dict[str, Any] | None = None,
    ) -> None:
        self._doc, self._steps, self._artifacts = doc, steps, artifacts
        tracked = tracked or {}
        # the pipeline's parameters, then those its steps logged with `log_params`
        self.params: dict[str, Any] = {**(params or {}), **tracked.get("params", {})}
        # each metric's last logged value (what `orch runs --metric` shows)
        self.metrics: dict[str, float] = dict(tracked.get("metrics", {}))
        # metric series: {name: [{"step", "position", "value"}]} in logging order
        self.series: dict[str, list[dict[str, Any]]] = dict(tracked.get("series", {}))
        # artifacts steps logged with `log_artifact`: {"name", "step", "hash", "serializer", ...}
        self.logged_artifacts: list[dict[str, Any]] = list(tracked.get("artifacts", []))

    @property
    def run_id(self) -> str:
        return str(self._doc["run_id"])

    @property
    def pipeline(self) -> str:
        return str(self._doc["pipeline"])

    @property
    def status(self) -> str:
        return str(self._doc["status"])

    @property
    def duration(self) -> float | None:
        value = self._doc.get("duration")
        return None if value is None else float(value)

    @property
    def steps(self) -> list[StepRun]:
        return list(self._steps)

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, pipeline={self.pipeline!r}, status={self.status!r})"

    def step(self, name: str) -> StepRun:
        """The step run called `name`; unknown names raise `NotFound` with a suggestion."""
        by_name = {s.name: s for s in self._steps}
        if name not in by_name:
            raise NotFound(
                f"run {self.run_id} has no step '{name}'{did_you_mean(name, by_name)}; "
                f"its steps: {', '.join(by_name) or 'none'}"
            )
        return by_name[name]

    def output_ref(self, step: str, output: str | int | None = None) -> ArtifactRef:
        """The stored artifact of one output of `step` (see `output`)."""
        s = self.step(step)
        where = f"step '{step}' of run {self.run_id}"
        if s.state == "failed":
            raise _step_error(self.run_id, s)
        if not s.outputs:
            raise NotFound(f"{where} has no stored output (it {s.state})")
        return s.outputs[_output_index(s, output, where)]

    def output(self, step: str, output: str | int | None = None) -> Any:
        """The value `step` returned, loaded from the artifact store.

        A step with several outputs needs `output`: its name or its index (0, 1, ...).
        """
        ref = self.output_ref(step, output)
        try:
            return self._artifacts.get(ref)
        except ArtifactError as exc:
            label = "" if output is None else f" output {output!r}"
            raise ArtifactError(f"run {self.run_id} step '{step}'{label}: {exc}") from None

    def artifact(self, name: str) -> Any:
        """The value a step logged with `log_artifact(value, name)` (a file: its bytes)."""
        by_name = {a["name"]: a for a in self.logged_artifacts}
        if name not in by_name:
            raise NotFound(
                f"run {self.run_id} logged no artifact '{name}'{did_you_mean(name, by_name)}; "
                f"it logged: {', '.join(by_name) or 'none'}"
            )
        return self._artifacts.get(ArtifactRef.from_json(by_name[name]))

    def explain(self, step: str) -> dict[str, Any]:
        """Why `step` ran or was cached: the document of `orch explain RUN STEP --json`."""
        s = self.step(step)
        return {
            "run_id": self.run_id,
            "step": s.name,
            "state": s.state,
            "cache_key": s.cache_key,
            "reason": s.reason,
        }

    def raise_for_status(self) -> None:
        """Raise `StepFailed` (`StepTimeout` for a timeout) for the first failed step."""
        for s in self._steps:
            if s.state == "failed":
                raise _step_error(self.run_id, s)

    def to_json(self) -> dict[str, Any]:
        """The document `orch run --json` prints."""
        steps = [s.to_json() for s in self._steps]
        return {**self._doc, "metrics": self.metrics, "steps": steps}


def _step_error(run_id: str, s: StepRun) -> StepFailed:
    cause = (s.error or "failed").splitlines()[0]
    cls = StepTimeout if f"step '{s.name}' timed out after" in cause else StepFailed
    return cls(s.name, run_id, cause)


def _output_index(s: StepRun, output: str | int | None, where: str) -> int:
    names = s.output_names
    if output is None:
        if len(s.outputs) == 1:
            return 0
        named = [n for n in names if not n.isdigit()]
        example = f"'{named[0]}' or 0" if named else "0"
        raise NotFound(
            f"{where} has {len(s.outputs)} outputs ({', '.join(names)}); "
            f"say which, by name or index, e.g. {example}"
        )
    if isinstance(output, int) and not isinstance(output, bool):
        if 0 <= output < len(s.outputs):
            return output
        raise NotFound(f"{where} has no output {output}; it has {len(s.outputs)} (0-based)")
    key = str(output)
    if key in names:
        return names.index(key)
    if key.isdigit() and int(key) < len(s.outputs):
        return int(key)
    raise NotFound(
        f"{where} has no output '{key}'{did_you_mean(key, names)}; its outputs: {', '.join(names)}"
    )


def _names(outputs: list[dict[str, Any]], declared: list[str] | None) -> list[str]:
    """Output names: recorded ones, else the step's declared ones, else "0", "1", ..."""
    names = []
    for i, o in enumerate(outputs):
        name = o.get("name") if isinstance(o, dict) else None
        if not name and declared and i < len(declared):
            name = declared[i]
        names.append(str(name) if name else str(i))
    return names


def from_result(
    result: Any, graph: Graph, artifacts: Any, tracked: dict[str, Any] | None = None
) -> Run:
    """A `Run` over the engine's `RunResult` of `graph` (and what its steps tracked)."""
    steps = []
    for s in result.steps:
        node = graph.nodes.get(s.name)
        declared = getattr(node.step, "output_names", None) if node is not None else None
        steps.append(
            StepRun(
                s.name,
                s.kind,
                str(s.state),  # plain text, as a run read from the store has it
                s.duration,
                s.attempts,
                s.cache_key,
                dict(s.reason or {}),
                s.error,
                list(s.outputs),
                _names([{}] * len(s.outputs), declared),
            )  # fmt: skip
        )
    doc = {
        "run_id": result.run_id,
        "pipeline": result.pipeline,
        "status": str(result.status),
        "duration": round(result.duration, 4),
    }
    return Run(doc, steps, artifacts, dict(graph.params), tracked)


def history(
    ws: Any,
    run_row: dict[str, Any],
    step_rows: list[dict[str, Any]],
    tracked: dict[str, Any] | None = None,
) -> Run:
    """A `Run` over rows of the metadata store, with the same `to_json()` as a fresh run."""
    steps = [
        StepRun(
            r["name"],
            r["kind"],
            r["state"],
            float(r.get("duration") or 0.0),
            int(r.get("attempts") or 0),
            r.get("cache_key"),
            dict(r.get("reason") or {}),
            r.get("error"),
            [ArtifactRef.from_json(o) for o in r.get("outputs") or []],
            _names(list(r.get("outputs") or []), None),
        )  # fmt: skip
        for r in step_rows
    ]
    ended, started = run_row.get("ended_at"), run_row.get("started_at")
    duration = (ended - started).total_seconds() if ended and started else None
    doc = {
        "run_id": run_row["id"],
        "pipeline": run_row["pipeline"],
        "status": run_row["status"],
        "duration": None if duration is None else round(duration, 4),
    }
    return Run(doc, steps, ws.artifacts, dict(run_row.get("params") or {}), tracked)
