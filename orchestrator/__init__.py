"""orchestrator: typed-step DAG pipelines for machine learning.

Public API::

    from orchestrator import step, pipeline, current, FileInput
    from orchestrator import Schedule, EventTrigger, FileSensor, DriftMonitor, MetricMonitor
    import orchestrator
    run = orchestrator.run(my_pipeline, params={...})      # -> orchestrator.Run
    orchestrator.runs(pipeline=None, status=None, limit=20)
    orchestrator.load(run_id, step, output=None)

`orchestrator.run` is also the name of the package holding the run engine: the package
object is made callable (it calls `orchestrator.api.run`), so both `orchestrator.run(...)`
and `orchestrator.run.engine` work, whichever is imported first.
"""

import sys
import types
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


_API = ("runs", "load", "get_run", "Run", "StepRun", "Workspace")


class _CallableRunPackage(types.ModuleType):
    """The package `orchestrator.run`, callable as `orchestrator.run(...)` (the Python API)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from orchestrator.api import run

        return run(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "run" and isinstance(value, types.ModuleType):
            value.__class__ = _CallableRunPackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
if "orchestrator.run" in sys.modules:  # bound before this module could make it callable
    sys.modules["orchestrator.run"].__class__ = _CallableRunPackage


def __getattr__(name: str) -> Any:
    import importlib

    if name == "run":
        return importlib.import_module("orchestrator.run")  # made callable as it is bound
    if name in _API:
        module = "orchestrator.config" if name == "Workspace" else "orchestrator.api"
        return getattr(importlib.import_module(module), name)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'orchestrator' has no attribute '{name}'")


__all__ = [
    "ArtifactError",
    "Run",
    "StepRun",
    "Workspace",
    "get_run",
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
