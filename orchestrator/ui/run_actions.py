"""A run page's actions: resume a run that did not succeed, re-run one with the same
params, cancel a running one.

Each is a POST, so `auth.guard` lets it through only with the UI's token. Resume and
re-run start a detached `orch resume RUN` / `orch run TARGET --params-file FILE -e
EXECUTOR` child (ui/launch.py) and redirect to the new run's page once it is recorded;
the re-run's params file (the run's recorded params, JSON) is written beside the
child's log under `<state folder>/ui-runs/`. Cancel records the request in the store
(the run's engine polls it) and redirects back to the run. Asking a run in the wrong
state (resume a succeeded run, cancel a finished one) is a 409 naming its state.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from orchestrator.errors import NotFound
from orchestrator.ui import launch, queries
from orchestrator.ui.views_runs import RunIdPath
from orchestrator.ui.web import not_found, page, ui

router = APIRouter()


def _run(request: Request, run_id: str) -> dict[str, Any]:
    try:
        return queries.get_run(ui(request).store, run_id)
    except NotFound as exc:
        raise not_found(str(exc)) from None


def _started(request: Request, started: launch.Launched) -> Response:
    if started.run_id is not None:
        return RedirectResponse(f"/runs/{started.run_id}", status_code=303)
    if started.error:
        detail = f"the run did not start (log: {started.log}):\n{started.error}"
        context = {"status": 500, "title": "The run did not start", "detail": detail}
        return page(request, "error.html", context, status_code=500)
    return RedirectResponse("/runs", status_code=303)


@router.post("/runs/{run_id}/resume")
def resume_run(request: Request, run_id: RunIdPath) -> Response:
    state, run = ui(request), _run(request, run_id)
    if run["status"] in ("running", "succeeded"):
        raise HTTPException(409, f"run {run['id']} is {run['status']}: only a run that "
                            "failed, was interrupted or was cancelled can be resumed")  # fmt: skip
    started = launch.start_run(
        state.store, state.artifacts, state.home, run["id"], [], command="resume"
    )
    return _started(request, started)


@router.post("/runs/{run_id}/rerun")
def rerun(request: Request, run_id: RunIdPath) -> Response:
    state, run = ui(request), _run(request, run_id)
    folder = state.home / "ui-runs"
    folder.mkdir(parents=True, exist_ok=True)
    params = folder / f"params-{run['id']}-{uuid.uuid4().hex[:8]}.json"
    params.write_text(json.dumps(run.get("params") or {}))
    args = ["--params-file", str(params.resolve()), "--executor", run["executor"]]
    started = launch.start_run(state.store, state.artifacts, state.home, run["target"], args)
    return _started(request, started)


@router.post("/runs/{run_id}/cancel")
def cancel_run(request: Request, run_id: RunIdPath) -> Response:
    state, run = ui(request), _run(request, run_id)
    if run["status"] != "running" or not state.store.request_cancel(run["id"]):
        status = queries.get_run(state.store, run["id"])["status"]
        raise HTTPException(409, f"run {run['id']} is {status}, not running: nothing to cancel")
    return RedirectResponse(f"/runs/{run['id']}", status_code=303)
