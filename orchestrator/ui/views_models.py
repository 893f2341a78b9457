"""Models: registered models, a model's versions, metrics and lineage; promote, roll back.

Every change goes through `StoreRegistry.promote`, so the registry's rule (one production
version per model; the previous one archived in the same transaction) lives in one
place. Rolling back is promoting an older version. Each version's button
`<button data-promote-version="V">` sits in a plain form posting to
`/models/NAME/versions/V/promote`: the page asks `confirm()` first, and the form works
without JavaScript too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.errors import NotFound
from orchestrator.ui import present
from orchestrator.ui.web import NAME, not_found, page, ui

router = APIRouter()

ModelPath = Annotated[str, Path(pattern=NAME, description="A model name.")]
VersionPath = Annotated[int, Path(ge=1, le=2_147_483_647, description="A model version.")]
MetricQuery = Annotated[str | None, Query(max_length=200, pattern=r"^[^<>\"'`\x00-\x1f]*$")]


def version_json(v: Any) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "stage": v.stage,
        "metrics": v.metrics,
        "run_id": v.run_id,
        "step": v.step,
        "params": v.params,
        "data_hash": v.data_hash,
        "artifact_hash": v.artifact_hash,
        "reason": v.reason,
        "created_at": present.iso(v.created_at),
    }


def _models(request: Request) -> list[dict[str, Any]]:
    by_name: dict[str, list[Any]] = {}
    for v in ui(request).registry.versions():
        by_name.setdefault(v.name, []).append(v)
    out = []
    for name, versions in sorted(by_name.items()):
        prod = next((v for v in versions if v.stage == "production"), None)
        out.append(
            {
                "name": name,
                "versions": len(versions),
                "latest": versions[-1],
                "production": prod.version if prod else None,
            }
        )
    return out


def _versions(request: Request, name: str) -> list[Any]:
    versions = ui(request).registry.versions(name)
    if not versions:
        raise not_found(f"no model '{name}' is registered (see /models)")
    return list(versions)


SHOWN_VERSIONS = 50  # newest versions in the tables unless all are asked for


def _model_view(
    request: Request, name: str, metric: str | None, show_all: bool = False
) -> dict[str, Any]:
    versions = _versions(request, name)
    metrics = sorted({k for v in versions for k in v.metrics})
    if metric and metric not in metrics:
        raise HTTPException(
            422, f"model '{name}' has no metric '{metric}'; its metrics: {', '.join(metrics)}"
        )
    chosen = metric or (metrics[0] if metrics else None)
    prod = next((v for v in versions if v.stage == "production"), None)
    chart = {
        "labels": [f"v{v.version}" for v in versions],
        "metrics": {m: [v.metrics.get(m) for v in versions] for m in metrics},
        "chosen": chosen,
    }
    newest = list(reversed(versions))
    shown = newest if show_all else newest[:SHOWN_VERSIONS]
    if prod is not None and prod not in shown:
        shown.append(prod)  # production is always in the table
    return {
        "name": name,
        "versions": shown,  # newest first
        "total": len(versions),
        "hidden": len(versions) - len(shown),
        "metrics": metrics,
        "chosen": chosen,
        "production": prod,
        "chart": chart,
    }


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> Response:
    return page(request, "models.html", {"models": _models(request)})


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(
    request: Request, name: ModelPath, metric: MetricQuery = None, all: bool = False
) -> Response:
    return page(request, "model.html", _model_view(request, name, metric, show_all=all))


@router.post("/models/{name}/versions/{version}/promote")
def promote(request: Request, name: ModelPath, version: VersionPath) -> Response:
    registry = ui(request).registry
    try:
        target = registry.get(name, version)
    except NotFound as exc:
        raise not_found(str(exc)) from None
    current = registry.production(name)
    if current is not None and current.version == version:
        reason = target.reason  # already production: nothing changes
    elif current is not None and version < current.version:
        reason = f"rolled back from v{current.version} in the web UI"
    else:
        reason = "promoted in the web UI"
    registry.promote(name, version, reason)
    return RedirectResponse(f"/models/{name}", status_code=303)


@router.get("/api/models")
def api_models(request: Request) -> dict[str, Any]:
    return {
        "models": [
            {"name": m["name"], "versions": m["versions"], "production": m["production"]}
            for m in _models(request)
        ]
    }


@router.get("/api/models/{name}")
def api_model(request: Request, name: ModelPath) -> dict[str, Any]:
    versions = _versions(request, name)
    prod = next((v.version for v in versions if v.stage == "production"), None)
    return {
        "name": name,
        "production": prod,
        "versions": [version_json(v) for v in versions],
    }
