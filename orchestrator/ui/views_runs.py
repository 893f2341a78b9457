"""Runs: the runs list, a run's page (header, DAG, steps), a step's detail, and their JSON.

Contract shared with the browser tests: each runs-list row is
`<tr data-run-id="ID" data-status="STATUS">` linking `/runs/ID`; the run page draws the
DAG in `<div id="dag">` (Cytoscape instance `window.orchGraph`, node `data.id` = step
name, `data.state` = step state), lists steps as `<tr data-step="NAME" data-state="STATE">`
and loads a step's detail into `<div id="step-panel">` (the fragment answered to an htmx
request); the step detail shows the log in `<pre id="step-log">` and a failure's error
and traceback in `<pre id="step-error">`. The timeline is `<section id="timeline">`, one
`<div class="tl-row" data-timeline-step="NAME">` per started step; while the run goes it
reloads itself from `/runs/ID/timeline` every second (htmx), then stops.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, field_validator

from orchestrator.errors import NotFound
from orchestrator.logs import live_log_file
from orchestrator.ui import graphs, present, previews, queries
from orchestrator.ui.web import (
    ARTIFACT,
    NAME,
    RUN_ID,
    RUN_STATUSES,
    STEP,
    is_fragment,
    not_found,
    page,
    ui,
)

router = APIRouter()

LIVE_BYTES = 256 * 1024
"""How much of a running step's live log file the panel shows (its end)."""
_LIVE_STATES = ("running", "pending")

RunIdPath = Annotated[str, Path(pattern=RUN_ID, description="A run id.")]
StepPath = Annotated[str, Path(pattern=STEP, description="A step name.")]


class RunQuery(BaseModel):
    """Filters and paging of the runs list (an empty filter means: any)."""

    pipeline: str | None = Field(None, pattern=NAME)
    status: Literal["running", "succeeded", "failed", "interrupted", "cancelled"] | None = None
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(50, ge=1, le=500)

    @field_validator("pipeline", "status", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


RunFilter = Annotated[RunQuery, Query()]


# -- JSON shapes ----------------------------------------------------------------------
def run_json(run: dict[str, Any]) -> dict[str, Any]:
    keys = ("pipeline", "target", "status", "params", "executor", "resumed_from", "error")
    out = {"id": run["id"], "run_id": run["id"]} | {k: run.get(k) for k in keys}
    out["started_at"] = present.iso(run.get("started_at"))
    out["ended_at"] = present.iso(run.get("ended_at"))
    out["duration"] = present.run_seconds(run)
    out["trigger"] = run.get("trigger") or {"kind": "manual"}
    out["trigger_label"] = present.trigger_info(run.get("trigger"))["label"]
    if "counts" in run:
        out["counts"] = run["counts"]
    return out


def step_json(s: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "kind", "state", "attempts", "duration", "cache_key")
    out = {k: s.get(k) for k in keys}
    out["started_at"] = present.iso(s.get("started_at"))
    out["ended_at"] = present.iso(s.get("ended_at"))
    out["reason"] = (s.get("reason") or {}).get("summary")
    out["why"] = present.why(s)
    out["failed"] = s.get("state") == "failed"
    return out


def attempt_json(a: dict[str, Any]) -> dict[str, Any]:
    keys = ("attempt", "state", "duration", "error", "traceback", "log")
    out = {k: a.get(k) for k in keys}
    out["started_at"] = present.iso(a.get("started_at"))
    out["ended_at"] = present.iso(a.get("ended_at"))
    return out


def _load_run(request: Request, run_id: str) -> dict[str, Any]:
    try:
        return queries.get_run(ui(request).store, run_id)
    except NotFound as exc:
        raise not_found(str(exc)) from None


def _run_view(request: Request, run: dict[str, Any]) -> dict[str, Any]:
    state = ui(request)
    steps = state.store.step_runs(run["id"])
    shape = state.graphs.of_run(run)
    graph = graphs.run_graph(shape, steps)
    rows = {s["name"]: s for s in steps}
    # every node gets a table row, pending ones included, in plan order
    table = [
        rows.get(n["id"]) or {"name": n["id"], "kind": n["kind"], "state": n["state"]}
        for n in graph["nodes"]
    ]
    return {"run": run, "steps": table, "graph": graph}


# -- pages ----------------------------------------------------------------------------
@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse("/runs", status_code=307)


@router.get("/runs", response_class=HTMLResponse)
def runs_list(request: Request, q: RunFilter) -> Response:
    state = ui(request)
    result = queries.runs_page(state.store, q.pipeline, q.status, q.page, q.per_page)
    return page(
        request,
        "runs.html",
        {
            "result": result,
            "q": q,
            "pipelines": queries.pipeline_names(state.store),
            "statuses": RUN_STATUSES,
            "counted": present.COUNTED_STATES,
            "trigger_info": present.trigger_info,
            "run_seconds": present.run_seconds,
        },
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: RunIdPath) -> Response:
    run = _load_run(request, run_id)
    if run["id"] != run_id:  # a prefix: show the run under its own address
        return RedirectResponse(f"/runs/{run['id']}", status_code=307)
    view = _run_view(request, run)
    failing = failing_step(run, view["steps"])
    opened = step_detail(request, run, failing["name"]) if failing else None
    return page(
        request,
        "run.html",
        view
        | {
            "trigger": present.trigger_info(run.get("trigger")),
            "seconds": present.run_seconds(run),
            "steps_json": [step_json(s) for s in view["steps"]],
            "failing": failing,
            "opened": opened,
            "timeline": graphs.timeline(run, view["steps"]),
            "models": ui(request).registry.of_run(run["id"]),
            "tracked": ui(request).store.tracking.summaries([run["id"]])[run["id"]],
        },
    )


def failing_step(run: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first failed step of a run that did not succeed (None if no step failed)."""
    if run.get("status") in ("running", "succeeded"):
        return None
    failed = [s for s in steps if s.get("state") == "failed"]
    if not failed:
        return None
    s = failed[0]
    error = str(s.get("error") or "").strip()
    return {"name": s["name"], "headline": error.splitlines()[0] if error else "failed"}


@router.get("/runs/{run_id}/timeline", response_class=HTMLResponse)
def timeline_fragment(request: Request, run_id: RunIdPath) -> Response:
    """The run's timeline alone: what a running run's page polls to redraw it."""
    view = _run_view(request, _load_run(request, run_id))
    timeline = graphs.timeline(view["run"], view["steps"])
    return page(request, "_timeline.html", {"run": view["run"], "timeline": timeline})


@router.get("/runs/{run_id}/steps/{step}", response_class=HTMLResponse)
def step_page(request: Request, run_id: RunIdPath, step: StepPath) -> Response:
    run = _load_run(request, run_id)
    detail = step_detail(request, run, step)
    template = "_step.html" if is_fragment(request) else "step.html"
    return page(request, template, {"run": run, **detail})


def step_detail(request: Request, run: dict[str, Any], name: str) -> dict[str, Any]:
    state = ui(request)
    try:
        s = queries.step_row(state.store, run["id"], name)
    except NotFound as exc:  # not recorded yet: a planned step still waiting for its inputs
        planned = {n["id"]: n for n in _run_view(request, run)["graph"]["nodes"]}
        if name not in planned:
            raise not_found(str(exc)) from None
        s = _not_started(name, planned[name]["kind"])
    if s.get("outputs"):  # label outputs by their declared names
        s = graphs.named_outputs(state.graphs.of_run(run), s)
    arts = previews.step_artifacts(state.store, state.artifacts, s)
    live = run.get("status") == "running" and s.get("state") in _LIVE_STATES
    if live and s.get("state") == "running":
        s = s | {"log": live_log(state.home, run["id"], name) or s.get("log")}
    return {
        "step": s,
        "explain": present.explanation(s),
        "attempts": state.store.attempts(run["id"], name),
        "live": live,
        **arts,
    }


def live_log(home: Any, run_id: str, step: str) -> str:
    """The end of a running step's live log file ("" when there is none yet)."""
    path = live_log_file(home / "logs" / run_id, step)
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - LIVE_BYTES))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return text.partition("\n")[2] if size > LIVE_BYTES else text


def _not_started(name: str, kind: str) -> dict[str, Any]:
    reason = {"summary": "not started yet: it waits for the steps it takes inputs from"}
    keys = ("attempts", "duration", "cache_key", "params", "inputs", "outputs", "error", "log")
    return {k: None for k in keys} | {
        "name": name,
        "kind": kind,
        "state": "pending",
        "attempts": 0,
        "reason": reason,
    }


# -- JSON API -------------------------------------------------------------------------
@router.get("/api/runs")
def api_runs(request: Request, q: RunFilter) -> dict[str, Any]:
    result = queries.runs_page(ui(request).store, q.pipeline, q.status, q.page, q.per_page)
    return {
        "runs": [run_json(r) for r in result.runs],
        "page": result.page,
        "per_page": result.per_page,
        "total": result.total,
        "pages": result.pages,
    }


@router.get("/api/runs/{run_id}")
def api_run(request: Request, run_id: RunIdPath) -> dict[str, Any]:
    view = _run_view(request, _load_run(request, run_id))
    return {"run": run_json(view["run"]), "steps": [step_json(s) for s in view["steps"]]}


@router.get("/api/runs/{run_id}/graph")
def api_run_graph(request: Request, run_id: RunIdPath) -> dict[str, Any]:
    graph: dict[str, Any] = _run_view(request, _load_run(request, run_id))["graph"]
    return graph


@router.get("/api/runs/{run_id}/steps/{step}")
def api_step(request: Request, run_id: RunIdPath, step: StepPath) -> dict[str, Any]:
    run = _load_run(request, run_id)
    d = step_detail(request, run, step)
    s = d["step"]
    return step_json(s) | {
        "run_id": run["id"],
        "live": d["live"],
        "attempt_history": [attempt_json(a) for a in d["attempts"]],
        "params": s.get("params"),
        "inputs": d["inputs"],
        "outputs": d["outputs"],
        "reason": s.get("reason"),
        "explanation": d["explain"],
        "error": s.get("error"),
        "log": s.get("log") or "",
    }


@router.get("/api/runs/{run_id}/steps/{step}/log")
def api_step_log(request: Request, run_id: RunIdPath, step: StepPath) -> dict[str, Any]:
    run = _load_run(request, run_id)
    got = queries.step_log(ui(request).store, run["id"], step)
    if got is None:
        raise not_found(f"run {run['id']} has no step '{step}'")
    live = run.get("status") == "running" and got["state"] == "running"
    if live:
        got["log"] = live_log(ui(request).home, run["id"], step) or got["log"]
    return {"run_id": run["id"], "step": step, "live": live} | got


@router.get("/api/artifacts/{artifact}")
def api_artifact(
    request: Request, artifact: Annotated[str, Path(pattern=ARTIFACT)]
) -> dict[str, Any]:
    state = ui(request)
    row = state.store.artifact_rows([artifact]).get(artifact)
    if row is None:
        raise not_found(f"no artifact {artifact} in the metadata store")
    item = {k: row[k] for k in ("hash", "serializer", "type", "size", "run_id", "step")}
    return item | {"preview": previews.preview(state.artifacts, item)}
