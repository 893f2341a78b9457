"""What a run reports: one `StepReport` per step of the run and the `RunResult` around them.

These are plain values handed to front ends (the CLI's table and `--json`, the Python
API, the UI). A failed run turns into an exception only on request:
`RunResult.raise_for_status()` raises `StepTimeout` for a step that ran past its timeout
and `StepFailed` for any other failure, naming the step and the run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.artifacts.store import ArtifactRef
from orchestrator.errors import StepFailed, StepTimeout
from orchestrator.state import StepState


@dataclasses.dataclass
class StepReport:
    name: str
    kind: str
    state: str
    duration: float = 0.0
    attempts: int = 0
    cache_key: str | None = None
    reason: dict[str, Any] | None = None
    error: str | None = None
    outputs: list[ArtifactRef] = dataclasses.field(default_factory=list)
    timed_out: bool = False


@dataclasses.dataclass
class RunResult:
    run_id: str
    pipeline: str
    status: str
    steps: list[StepReport]
    duration: float

    def step(self, name: str) -> StepReport | None:
        return next((s for s in self.steps if s.name == name), None)

    def raise_for_status(self) -> None:
        """Raise `StepFailed` (or `StepTimeout`) for the first step that failed, if any."""
        for s in self.steps:
            if s.state == StepState.FAILED:
                raise step_error(self.run_id, s)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "duration": round(self.duration, 4),
            "steps": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "state": s.state,
                    "duration": round(s.duration, 4),
                    "attempts": s.attempts,
                    "cache_key": s.cache_key,
                    "reason": (s.reason or {}).get("summary"),
                    "error": s.error,
                    "outputs": [o.to_json() for o in s.outputs],
                }
                for s in self.steps
            ],
        }


def step_error(run_id: str, report: StepReport) -> StepFailed:
    """The exception that stands for a failed step (`StepTimeout` when it timed out)."""
    cause = (report.error or "failed").splitlines()[0]
    cls = StepTimeout if report.timed_out else StepFailed
    return cls(report.name, run_id, cause)
