"""orchestrator: typed-step DAG pipelines for machine learning.

Public API::

    from orchestrator import step, pipeline, current, FileInput
"""

from orchestrator.context import ModelVersion, RunContext, current
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
from orchestrator.graph import Graph, Pipeline, pipeline
from orchestrator.step import FileInput, HashContent, Output, Step, step

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
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
