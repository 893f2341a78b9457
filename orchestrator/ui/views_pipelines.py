"""Pipelines: the list, a pipeline's page (graph, recent runs) and the start-run form.

A pipeline is one the store recorded (`pipelines`: name -> target) or a built-in one.
Its parameters come from loading its target as `orch run` does; the form
`<form id="start-run" method="post" action="/pipelines/NAME/runs">` has one input per
parameter (`name` = the parameter, its declared bounds in
`<span class="field-hint" data-field="PARAM">`) and a `<select name="_executor">`; a bad
value answers 422 with `<span class="field-error" data-field="PARAM">`. `?from=RUN`
fills the form with that run's parameters and executor (the run page's "edit and
re-run" link). A valid submit starts a detached
`orch run` and redirects (303) to the new run (or to /runs if it did not show in time).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.errors import NotFound
from orchestrator.loader import builtin_pipelines, load_target
from orchestrator.ui import forms, graphs, launch, present, queries
from orchestrator.ui.web import NAME, form_data, not_found, page, ui

router = APIRouter()

NamePath = Annotated[str, Path(pattern=NAME, description="A pipeline name.")]


def _all_pipelines(request: Request) -> list[dict[str, Any]]:
    """Recorded pipelines, then the built-in ones never run here."""
    recorded = queries.pipelines(ui(request).store)
    names = {p["name"] for p in recorded}
    extra = [
        {"name": n, "ref": n, "runs": 0, "last_run": None, "updated_at": None}
        for n in sorted(builtin_pipelines())
        if n not in names
    ]
    return recorded + extra


def _target(request: Request, name: str) -> str:
    row = queries.pipeline_row(ui(request).store, name)
    if row is not None:
        return str(row["ref"])
    if name in builtin_pipelines():
        return name
    raise not_found(f"no pipeline '{name}' (it has never run here and is no built-in pipeline)")


def _load(target: str) -> tuple[Any, str]:
    """The loaded pipeline, or None and why it cannot be loaded."""
    try:
        return load_target(target), ""
    except Exception as exc:  # user code: any error means the form cannot be offered
        return None, f"cannot load {target}: {type(exc).__name__}: {exc}"


def _pipeline_view(
    request: Request, name: str, form: forms.StartForm | None = None
) -> dict[str, Any]:
    state = ui(request)
    target = _target(request, name)
    pipe, load_error = _load(target)
    runs = queries.recent_runs(state.store, name, 20)
    if runs:
        latest = runs[0]
        shape = state.graphs.of_run(latest)
        graph = graphs.run_graph(shape, state.store.step_runs(latest["id"]))
    else:
        shape = state.graphs.shape(target, {}) if pipe is not None else None
        graph = graphs.run_graph(shape, [])
    if form is None and pipe is not None:
        form = forms.blank_form(pipe)
    return {
        "name": name,
        "target": target,
        "doc": (getattr(pipe, "__doc__", None) or "").strip(),
        "load_error": load_error,
        "runs": runs,
        "graph": graph,
        "form": form,
        "trigger_info": present.trigger_info,
        "run_seconds": present.run_seconds,
        "counted": present.COUNTED_STATES,
    }


@router.get("/pipelines", response_class=HTMLResponse)
def pipelines_page(request: Request) -> Response:
    return page(request, "pipelines.html", {"pipelines": _all_pipelines(request)})


@router.get("/pipelines/{name}", response_class=HTMLResponse)
def pipeline_page(
    request: Request,
    name: NamePath,
    from_run: Annotated[str | None, Query(alias="from", pattern=NAME)] = None,
) -> Response:
    """The pipeline; `?from=RUN` fills the start form with that run's params and executor."""
    form = None
    if from_run:
        try:
            run = queries.get_run(ui(request).store, from_run)
        except NotFound as exc:
            raise not_found(str(exc)) from None
        pipe, _error_text = _load(_target(request, name))
        if pipe is not None:
            form = forms.prefilled_form(pipe, dict(run.get("params") or {}), run["executor"])
    return page(request, "pipeline.html", _pipeline_view(request, name, form))


@router.post("/pipelines/{name}/runs", response_class=HTMLResponse)
def start_run(
    request: Request,
    name: NamePath,
    submitted: Annotated[dict[str, str], Depends(form_data)],
) -> Response:
    state = ui(request)
    target = _target(request, name)
    pipe, load_error = _load(target)
    if pipe is None:
        return page(request, "error.html", _error(409, load_error), status_code=409)
    form, overrides = forms.validate_form(pipe, submitted)
    executor = forms.pick_executor(form, submitted)
    if not form.ok:
        return page(request, "pipeline.html", _pipeline_view(request, name, form), 422)
    args = [*forms.cli_params(overrides), "--executor", executor]
    started = launch.start_run(state.store, state.artifacts, state.home, target, args)
    if started.run_id is not None:
        return RedirectResponse(f"/runs/{started.run_id}", status_code=303)
    if started.error:
        detail = f"the run did not start (log: {started.log}):\n{started.error}"
        return page(request, "error.html", _error(500, detail), status_code=500)
    return RedirectResponse("/runs", status_code=303)


def _error(status: int, detail: str) -> dict[str, Any]:
    titles = {409: "Cannot start this pipeline", 500: "The run did not start"}
    return {"status": status, "title": titles.get(status, "Error"), "detail": detail}


@router.get("/api/pipelines")
def api_pipelines(request: Request) -> dict[str, Any]:
    out = []
    for p in _all_pipelines(request):
        last = p["last_run"]
        out.append(
            {
                "name": p["name"],
                "ref": p["ref"],
                "runs": p["runs"],
                "last_run": None
                if last is None
                else {
                    "id": last["id"],
                    "status": last["status"],
                    "started_at": present.iso(last["started_at"]),
                },
            }
        )
    return {"pipelines": out}


@router.get("/api/pipelines/{name}")
def api_pipeline(request: Request, name: NamePath) -> dict[str, Any]:
    view = _pipeline_view(request, name)
    form = view["form"]
    fields = form.fields if form else []

    def listed(step: bool) -> list[dict[str, Any]]:
        return [
            {"name": f.name, "type": f.type, "default": f.default} for f in fields if f.step is step
        ]

    return {
        "name": name,
        "target": view["target"],
        "params": listed(False),
        "step_params": listed(True),
        "load_error": view["load_error"] or None,
        "graph": view["graph"],
        "runs": [{"id": r["id"], "status": r["status"]} for r in view["runs"]],
    }
