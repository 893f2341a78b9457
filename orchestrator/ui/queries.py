"""The UI's reads of the metadata store, answered by the store itself (store/browse.py).

The UI never builds SQL nor imports the store's schema (an import-linter contract says
so); its pages call these names, which are the store's browsing functions.
"""

from __future__ import annotations

from orchestrator.store.browse import (
    RunPage,
    get_run,
    launch_states,
    pipeline_names,
    pipeline_row,
    pipelines,
    recent_runs,
    recorded_triggers,
    refresh_stale,
    run_for_request,
    runs_by_trigger,
    runs_page,
    schedule_states,
    step_log,
    step_row,
    tick_claims,
)

__all__ = [
    "RunPage",
    "get_run",
    "launch_states",
    "pipeline_names",
    "pipeline_row",
    "pipelines",
    "recent_runs",
    "recorded_triggers",
    "refresh_stale",
    "run_for_request",
    "runs_by_trigger",
    "runs_page",
    "schedule_states",
    "step_log",
    "step_row",
    "tick_claims",
]
