"""The one place built-in steps look for a run context.

Steps stay callable as plain functions: outside a run there is no context, so logging
is skipped and callers that need a context (the model registry) get `None` and decide.
"""

from __future__ import annotations

from typing import Any

from orchestrator import OrchestratorError, RunContext, current


def run_context() -> RunContext | None:
    """The context of the running step, or None when called as a plain function."""
    try:
        return current()
    except OrchestratorError:
        return None


def log_info(event: str, **fields: Any) -> None:
    """Log to the step run's log when inside a run; do nothing otherwise."""
    ctx = run_context()
    if ctx is not None:
        ctx.log.info(event, **fields)


def log_warning(event: str, **fields: Any) -> None:
    """Log a warning to the step run's log when inside a run; do nothing otherwise."""
    ctx = run_context()
    if ctx is not None:
        ctx.log.warning(event, **fields)
