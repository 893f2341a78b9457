"""Experiments: the runs table with parameter and metric columns, and the compare page.

`/experiments` lists runs as `orch runs` does with its experiment options (`pipeline`,
`status`, `sort` (a name, `-name` descending), `filter` (repeatable `NAME=VALUE`,
`NAME>NUMBER`), `search`, `columns`, `metric`) and a checkbox per run; the form submits
the checked runs to `/compare?runs=a,b,c`. The compare page shows the metrics side by
side (the best value of each marked `class="best"`), each metric series as a small SVG
chart, and each run's differences from the first, every one linking to the step it
touched. `/api/compare` answers the same document as `orch compare --json`. A sweep opens
in the same view, `/compare?sweep=RUN`: every combination's parameters and metrics, best
first, the best row marked `class="best"` (`/api/sweeps/RUN`: the same rows as JSON).

Contract shared with the tests: experiment rows are `<tr data-run-id="ID">` with
`<input type="checkbox" name="run" value="ID">` and one `<td data-col="COLUMN">` per
chosen column; compare differences are `<li data-step="STEP" data-kind="KIND">`; sweep
rows are `<tr data-combination="NAME">` in `<table id="sweep-table">`, cells
`<td data-col="params.P">` / `<td data-col="metrics.M">`.
Bad options answer 422 with the same one-line message the CLI prints.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.compare import compare
from orchestrator.errors import NotFound, OrchestratorError, ParamError
from orchestrator.experiments import columns, query, text_of, value_of
from orchestrator.sweeps import sweep_of
from orchestrator.ui import queries
from orchestrator.ui.web import NAME, not_found, page, ui

router = APIRouter()

Text = Annotated[str | None, Query(max_length=400)]
Many = Annotated[list[str] | None, Query(max_length=50)]


def _bad(exc: ParamError) -> HTTPException:
    return HTTPException(status_code=422, detail=str(exc))


def _runs(text: str) -> list[str]:
    ids = [r.strip() for r in text.split(",") if r.strip()]
    if len(ids) > 20:
        raise ParamError(f"compare takes at most 20 runs, got {len(ids)}")
    return ids


@router.get("/experiments", response_class=HTMLResponse)
def experiments(
    request: Request,
    pipeline: Annotated[str | None, Query(pattern=NAME)] = None,
    sort: Text = None,
    search: Text = None,
    cols: Annotated[str | None, Query(alias="columns", max_length=400)] = None,
    filters: Annotated[list[str] | None, Query(alias="filter", max_length=20)] = None,
    metric: Many = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    store = ui(request).store
    want = [f for f in filters or [] if f.strip()]
    try:
        rows = query(
            store, pipeline=pipeline or None, limit=limit, sort=sort or None,
            filters=want, search=search or None,
        )  # fmt: skip
        extra = columns(rows, cols or "params,metrics", metric or [])
    except ParamError as exc:
        raise _bad(exc) from None
    q = {"pipeline": pipeline or "", "sort": sort or "", "search": search or ""}
    q |= {"columns": cols or "", "filter": want}
    q |= {"sort_col": _sorted_column(sort or "", extra), "desc": (sort or "").startswith("-")}
    return page(
        request,
        "experiments.html",
        {
            "rows": rows,
            "extra": extra,
            "q": q,
            "pipelines": queries.pipeline_names(store),
            "cell": lambda r, c: "" if value_of(r, c) is None else text_of(value_of(r, c)),
        },
    )


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    runs: Annotated[str, Query(max_length=800)] = "",
    sweep: Annotated[str | None, Query(pattern=NAME)] = None,
) -> Response:
    if sweep:
        return page(request, "compare.html", {"sweep": _sweep(request, sweep), "fmt": _fmt})
    doc = _compare(request, runs)
    charts = {name: chart(per_run) for name, per_run in doc["series"].items()}
    return page(request, "compare.html", {"doc": doc, "charts": charts, "fmt": _fmt, "sweep": None})


@router.get("/api/sweeps/{run_id}")
def api_sweep(request: Request, run_id: Annotated[str, Path(pattern=NAME)]) -> Any:
    """The same rows as `orch sweep-table RUN --json` (with the ranking metric)."""
    return _sweep(request, run_id)


def _sweep(request: Request, run_id: str) -> dict[str, Any]:
    """A sweep's combinations best first: `run_id`, `metric`, `maximize`, `params` and
    `metrics` (column names), `rows` (as `Sweep.table`), `best` (its combination)."""
    state = ui(request)
    try:
        result = sweep_of(state, state.store.get_run(run_id), None, None)
    except NotFound as exc:
        raise not_found(str(exc)) from None
    except OrchestratorError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    rows, best = result.table(), result.best
    metrics = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    if result.metric in metrics:
        metrics.remove(result.metric)
        metrics.insert(0, result.metric)
    return {
        "run_id": result.run.run_id,
        "pipeline": result.run.pipeline,
        "metric": result.metric,
        "maximize": result.maximize,
        "params": list(dict.fromkeys(k for r in rows for k in r["params"])),
        "metrics": metrics,
        "rows": rows,
        "best": best["combination"] if best else None,
    }


@router.get("/compare/select", include_in_schema=False)
def compare_selected(run: Annotated[list[str] | None, Query(max_length=20)] = None) -> Response:
    """The experiments form's checked runs, as a /compare link."""
    return RedirectResponse(f"/compare?runs={','.join(run or [])}", status_code=303)


@router.get("/api/compare")
def api_compare(request: Request, runs: Annotated[str, Query(max_length=800)] = "") -> Any:
    return _compare(request, runs)


def _compare(request: Request, runs: str) -> dict[str, Any]:
    try:
        return compare(ui(request).store, _runs(runs))
    except NotFound as exc:
        raise not_found(str(exc)) from None
    except ParamError as exc:
        raise _bad(exc) from None


def _sorted_column(sort: str, extra: list[str]) -> str:
    """The column `sort` sorts by (`-r2` sorts `metrics.r2`), or ""."""
    key = sort.removeprefix("-")
    return next((c for c in extra if key in (c, c.partition(".")[2])), "")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")


def chart(per_run: dict[str, list[dict[str, Any]]], w: int = 240, h: int = 80) -> dict[str, Any]:
    """One small line chart (SVG polylines, straight segments) of a metric series per run."""
    points = [p for pts in per_run.values() for p in pts]
    if not points:
        return {"w": w, "h": h, "lines": []}
    xs, ys = [p["position"] for p in points], [p["value"] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)

    def sx(x: float) -> float:
        return 4 + (w - 8) * ((x - x0) / (x1 - x0) if x1 > x0 else 0.5)

    def sy(y: float) -> float:
        return h - 4 - (h - 8) * ((y - y0) / (y1 - y0) if y1 > y0 else 0.5)

    lines = [
        {
            "run": rid,
            "color": COLORS[i % len(COLORS)],
            "points": " ".join(f"{sx(p['position']):.1f},{sy(p['value']):.1f}" for p in pts),
        }
        for i, (rid, pts) in enumerate(per_run.items())
        if pts
    ]
    return {"w": w, "h": h, "lines": lines, "low": y0, "high": y1}
