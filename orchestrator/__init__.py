"""orchestrator: typed-step DAG pipelines for machine learning.

Public API::

    from orchestrator import step, pipeline, current, FileInput
    from orchestrator import Schedule, EventTrigger, FileSensor, DriftMonitor, MetricMonitor
    import orchestrator
    run = orchestrator.run(my_pipeline, params={...})      # -> orchestrator.Run
    orchestrator.runs(pipeline=None, status=None, limit=20, sort=None, filters=None)
    orchestrator.compare([run_id, run_id, ...])
    current().log_metric(name, value, step=None); log_params(...); log_artifact(v, name)
    orchestrator.load(run_id, step, output=None)
    orchestrator.sweep(my_pipeline, grid={"train.C": [0.1, 1, 10]})   # -> orchestrator.Sweep

The API loads on first use (`orchestrator.api`), so a step's worker process, which
imports this package, never loads the metadata store.
"""

from typing import Any

from orchestrator.errors import (
    ArtifactError,
    ExecutorError,
    InvalidPipeline,
    NeverComputed,
    NotFound,
    OrchestratorError,
    ParamError,
    PipelineError,
    SelectionError,
    ServingError,
    StepFailed,
    StepTimeout,
    StoreError,
    TargetNotFound,
    TriggerError,
)
from orchestrator.execution.context import ModelVersion, RunContext, current
from orchestrator.model.conditions import Condition, when
from orchestrator.model.graph import Graph
from orchestrator.model.pipeline import Pipeline, pipeline
from orchestrator.model.step import FileInput, HashContent, Output, Step, fixed, step
from orchestrator.tracking import Metrics

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


_API = ("run", "runs", "load", "get_run", "compare", "Run", "StepRun", "Workspace")
_SWEEPS = ("sweep", "get_sweep", "Sweep")


def __getattr__(name: str) -> Any:
    import importlib

    if name in _API:
        module = "orchestrator.config" if name == "Workspace" else "orchestrator.api"
        return getattr(importlib.import_module(module), name)
    if name in _SWEEPS:
        return getattr(importlib.import_module("orchestrator.sweeps"), name)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'orchestrator' has no attribute '{name}'")


__all__ = [
    "ArtifactError",
    "ExecutorError",
    "NeverComputed",
    "SelectionError",
    "ServingError",
    "StoreError",
    "TargetNotFound",
    "TriggerError",
    "Run",
    "StepRun",
    "Workspace",
    "compare",
    "get_run",
    "get_sweep",
    "Sweep",
    "sweep",
    "load",
    "run",
    "runs",
    "DriftMonitor",
    "EventTrigger",
    "FileSensor",
    "MetricMonitor",
    "Schedule",
    "FileInput",
    "Graph",
    "HashContent",
    "InvalidPipeline",
    "Metrics",
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
    "Condition",
    "current",
    "fixed",
    "pipeline",
    "step",
    "when",
    "__version__",
]
