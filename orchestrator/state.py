"""States of runs and step runs: the words the store, the CLI and `--json` share.

A run ends `succeeded`, `failed`, `interrupted` (its process died or was stopped) or
`cancelled` (someone asked it to stop: `orch cancel`, the UI); a step run or attempt that
was still running when its run ended otherwise than `succeeded` is `interrupted`.
"""

from __future__ import annotations

from enum import StrEnum


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in (StepState.SUCCEEDED, StepState.CACHED)


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


STEP_KINDS = ("ingest", "validate", "feature", "train", "evaluate", "deploy", "custom")
