"""Models: registered models, a model's versions, aliases, metrics, lineage, the audit
trail and the servers answering with it; promote, roll back, set and remove aliases.

Every change goes through `StoreRegistry` (`promote`, `set_alias`) with `actor="ui"`,
so the registry's rules (one production version per model, the previous one archived
in the same transaction; every change one recorded event) live in one place. Rolling
back is promoting an older version. Each version's button
`<button data-promote-version="V">` sits in a plain form posting to
`/models/NAME/versions/V/promote` (with an optional `reason`): the page asks `confirm()`
first, and the form works without JavaScript too. A version made by a run also has
`<button data-reproduce-version="V">`, posting to `/models/NAME/versions/V/reproduce`:
it rebuilds the version from its lineage and verifies it (`orch reproduce NAME:V
--verify`, orchestrator/reproduce.py) and shows the verdict.

The metric chart gets one point per version; `data` holds each version's evaluation
data hash and `changed` whether it differs from the previous version's, so the page
joins only versions evaluated on the same data and marks where the data changed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.errors import NotFound, OrchestratorError
from orchestrator.store.model_servers import ModelServers
from orchestrator.store.registry import change_text
from orchestrator.ui import present
from orchestrator.ui.web import NAME, form_data, not_found, page, ui

router = APIRouter()

ModelPath = Annotated[str, Path(pattern=NAME, description="A model name.")]
VersionPath = Annotated[int, Path(ge=1, le=2_147_483_647, description="A model version.")]
AliasPath = Annotated[str, Path(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$", description="An alias.")]
MetricQuery = Annotated[str | None, Query(max_length=200, pattern=r"^[^<>\"'`\x00-\x1f]*$")]
Form = Annotated[dict[str, str], Depends(form_data)]
LIVE_WITHIN = 30.0  # seconds: a server not heard from for longer is not shown as serving


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


def event_json(e: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in e.items() if k != "created_at"} | {
        "created_at": present.iso(e["created_at"]),
        "change": change_text(e),
    }


def server_json(s: dict[str, Any]) -> dict[str, Any]:
    keys = ("url", "selector", "version", "host", "pid")
    return {k: s[k] for k in keys} | {"heartbeat_at": present.iso(s["heartbeat_at"])}


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


def chart_of(versions: list[Any], metrics: list[str], chosen: str | None) -> dict[str, Any]:
    """One point per version; `changed[i]`: version i was evaluated on other data than i-1."""
    data = [v.data_hash for v in versions]
    return {
        "labels": [f"v{v.version}" for v in versions],
        "metrics": {m: [v.metrics.get(m) for v in versions] for m in metrics},
        "chosen": chosen,
        "data": [(h or "")[:12] for h in data],
        "changed": [i > 0 and data[i] != data[i - 1] for i in range(len(data))],
    }


def _model_view(
    request: Request, name: str, metric: str | None, show_all: bool = False
) -> dict[str, Any]:
    state = ui(request)
    versions = _versions(request, name)
    metrics = sorted({k for v in versions for k in v.metrics})
    if metric and metric not in metrics:
        raise HTTPException(
            422, f"model '{name}' has no metric '{metric}'; its metrics: {', '.join(metrics)}"
        )
    chosen = metric or (metrics[0] if metrics else None)
    prod = next((v for v in versions if v.stage == "production"), None)
    newest = list(reversed(versions))
    shown = newest if show_all else newest[:SHOWN_VERSIONS]
    if prod is not None and prod not in shown:
        shown.append(prod)  # production is always in the table
    aliases = state.registry.aliases(name)
    aliases_of: dict[int, list[str]] = {}
    for alias, number in aliases.items():
        aliases_of.setdefault(number, []).append(alias)
    events = state.registry.events(name)
    return {
        "name": name,
        "versions": shown,  # newest first
        "total": len(versions),
        "hidden": len(versions) - len(shown),
        "metrics": metrics,
        "chosen": chosen,
        "production": prod,
        "promoted": next((e for e in events if e["to_value"] == "production"), None),
        "chart": chart_of(versions, metrics, chosen),
        "aliases": aliases,
        "aliases_of": aliases_of,
        "events": [e | {"change": change_text(e)} for e in events],
        "servers": ModelServers(state.store).live(name, LIVE_WITHIN),
    }


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> Response:
    return page(request, "models.html", {"models": _models(request)})


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(
    request: Request, name: ModelPath, metric: MetricQuery = None, all: bool = False
) -> Response:
    return page(request, "model.html", _model_view(request, name, metric, show_all=all))


def _reason(form: dict[str, str], default: str) -> str:
    given = " ".join(form.get("reason", "").split())[:500]
    return given or default


@router.post("/models/{name}/versions/{version}/promote")
def promote(request: Request, name: ModelPath, version: VersionPath, form: Form) -> Response:
    registry = ui(request).registry
    try:
        registry.get(name, version)
    except NotFound as exc:
        raise not_found(str(exc)) from None
    current = registry.production(name)
    if current is not None and version < current.version:
        default = f"rolled back from v{current.version} in the web UI"
    else:
        default = "promoted in the web UI"
    registry.promote(name, version, _reason(form, default), actor="ui")
    return RedirectResponse(f"/models/{name}", status_code=303)


@router.post("/models/{name}/versions/{version}/reproduce", response_class=HTMLResponse)
def reproduce_version(request: Request, name: ModelPath, version: VersionPath) -> Response:
    from orchestrator.reproduce import reproduce

    try:
        outcome = reproduce(ui(request).registry, name, str(version))
    except NotFound as exc:
        raise not_found(str(exc)) from None
    except OrchestratorError as exc:
        raise HTTPException(422, str(exc)) from None
    return page(request, "reproduce.html", {"name": name, "outcome": outcome.to_json()})


@router.post("/models/{name}/aliases")
def set_alias(request: Request, name: ModelPath, form: Form) -> Response:
    registry = ui(request).registry
    _versions(request, name)
    alias, number = form.get("alias", "").strip(), form.get("version", "").strip()
    if not number.isdigit():
        raise HTTPException(422, f"alias '{alias}': version '{number}' is not a number")
    try:
        registry.set_alias(name, alias, int(number), _reason(form, ""), actor="ui")
    except NotFound as exc:
        raise not_found(str(exc)) from None
    except OrchestratorError as exc:
        raise HTTPException(422, str(exc)) from None
    return RedirectResponse(f"/models/{name}", status_code=303)


@router.post("/models/{name}/aliases/{alias}/delete")
def delete_alias(request: Request, name: ModelPath, alias: AliasPath, form: Form) -> Response:
    try:
        ui(request).registry.set_alias(name, alias, None, _reason(form, ""), actor="ui")
    except NotFound as exc:
        raise not_found(str(exc)) from None
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
    state = ui(request)
    versions = _versions(request, name)
    prod = next((v.version for v in versions if v.stage == "production"), None)
    return {
        "name": name,
        "production": prod,
        "aliases": state.registry.aliases(name),
        "versions": [version_json(v) for v in versions],
        "events": [event_json(e) for e in state.registry.events(name)],
        "servers": [server_json(s) for s in ModelServers(state.store).live(name, LIVE_WITHIN)],
    }
