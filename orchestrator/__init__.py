"""orchestrator: typed-step DAG pipelines for machine learning.

Public API::

    from orchestrator import step, pipeline, current, FileInput
    from orchestrator import Schedule, EventTrigger, FileSensor, DriftMonitor, MetricMonitor
"""

from typing import Any

from orchestrator.errors import (
    ArtifactError,
    InvalidPipeline,
    NotFound,
    OrchestratorError,
    ParamError,
    PipelineError,
    StepFailed,
    StepTimeout,
)
from orchestrator.execution.context import ModelVersion, RunContext, current
from orchestrator.model.graph import Graph
from orchestrator.model.pipeline import Pipeline, pipeline
from orchestrator.model.step import FileInput, HashContent, Output, Step, step

__version__ = "0.1.0"

# Schedules, triggers and monitors load on first use: the monitors need the metadata
# store, which a step's worker process never imports.
_LAZY = {
    "Schedule": "orchestrator.triggers.schedules",
    "EventTrigger": "orchestrator.triggers.events",
    "FileSensor": "orchestrator.triggers.events",
    "DriftMonitor": "orchestrator.triggers.monitors",
    "MetricMonitor": "orchestrator.triggers.monitors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'orchestrator' has no attribute '{name}'")


__all__ = [
    "ArtifactError",
    "DriftMonitor",
    "EventTrigger",
    "FileSensor",
    "MetricMonitor",
    "Schedule",
    "FileInput",
    "Graph",
    "HashContent",
    "InvalidPipeline",
    "ModelVersion",
    "NotFound",
    "OrchestratorError",
    "Output",
    "ParamError",
    "Pipeline",
    "PipelineError",
    "RunContext",
    "Step",
    "StepFailed",
    "StepTimeout",
    "current",
    "pipeline",
    "step",
    "__version__",
]
