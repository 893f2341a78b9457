"""The one exception tree of the orchestrator.

Hierarchy::

    OrchestratorError                 every error we raise on purpose
    +-- PipelineError                 the pipeline definition is wrong (found before anything runs)
    |   +-- InvalidPipeline           one or more problems in the graph, listed in one message
    +-- ParamError                    a run-time parameter does not validate
    +-- TargetNotFound                `orch run X`: X is no built-in pipeline nor file.py:func
    +-- SelectionError                a partial run's --only/--from/--to/--tags is wrong
    |   +-- NeverComputed             a step it needs but does not run was never computed
    +-- StepFailed                    a step failed for good (`RunResult.raise_for_status`)
    |   +-- StepTimeout               ... because it ran past its timeout
    +-- ExecutorError                 an executor cannot be made, reached or used
    +-- ArtifactError                 an artifact is missing, corrupt or cannot be serialised
    +-- StoreError                    the metadata store cannot be reached or is inconsistent
    +-- NotFound                      a run, step or model version that does not exist
    +-- TriggerError                  a schedule, event trigger, sensor or monitor is wrong
    |   +-- ScheduleError             (orchestrator.triggers.schedules) a cron schedule
    +-- ServingError                  the model server or the web UI cannot start or answer

A step's own exception never crosses the worker boundary: the engine records it as the
step run's error (data, not an exception), and `RunResult.raise_for_status()` turns a
failed step into `StepFailed` or `StepTimeout` for callers that want an exception.

Each message names the object, says what was expected and what was found, and
where it can, the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OrchestratorError(Exception):
    """Root of every error the orchestrator raises on purpose."""


class PipelineError(OrchestratorError):
    """The pipeline definition is wrong."""


class InvalidPipeline(PipelineError):
    """A pipeline failed validation; `problems` lists each problem found."""

    def __init__(self, pipeline: str, problems: list[str]) -> None:
        self.pipeline = pipeline
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"pipeline '{pipeline}' is invalid ({len(problems)} {noun}):\n{lines}")


class ParamError(OrchestratorError):
    """A parameter given at run time does not validate."""


class TargetNotFound(OrchestratorError):
    """A run target could not be resolved."""


class SelectionError(OrchestratorError):
    """A partial run's `--only/--from/--to/--tags` names no step, or selects nothing."""


class NeverComputed(SelectionError):
    """A step a partial run needs but does not run has no cached output for its inputs."""


class StepFailed(OrchestratorError):
    """A step failed for good in a run (its code raised, or it ran past its timeout)."""

    def __init__(self, step: str, run_id: str, cause: str) -> None:
        self.step, self.run_id, self.cause = step, run_id, cause
        super().__init__(f"step '{step}' failed in run {run_id}: {cause}")


class StepTimeout(StepFailed):
    """A step ran past its timeout."""


class ExecutorError(OrchestratorError):
    """An executor cannot be made, reached or used (unknown name, no cluster, no engine)."""


class ArtifactError(OrchestratorError):
    """An artifact is missing, corrupt, or of a type with no serializer."""


class StoreError(OrchestratorError):
    """The metadata store cannot be reached or is inconsistent."""


class NotFound(OrchestratorError):
    """A run, step or model version that does not exist."""


class TriggerError(OrchestratorError):
    """A schedule, event trigger, file sensor or monitor is defined or used wrongly."""


class ServingError(OrchestratorError):
    """The model server or the web UI cannot start or answer."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ` (did you mean 'x'?)` for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
