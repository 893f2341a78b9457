"""Drift and metric checks the monitors ran, and one check's report drawn per feature.

Checks come from `MetadataStore.monitor_checks` / `monitor_check`; a check's report is
the JSON artifact its `report_hash` names, read through the artifact store (verified) by
`orchestrator.triggers.monitors.load_report`. A drift report is drawn as a bar chart of PSI per
feature against the PSI threshold and of KS p-values against theirs (numeric features),
next to the table; a metric check shows its value against its threshold.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from orchestrator.errors import OrchestratorError
from orchestrator.triggers.monitors import load_report
from orchestrator.ui import present
from orchestrator.ui.web import not_found, page, ui

router = APIRouter()

CheckPath = Annotated[int, Path(ge=1, le=2_147_483_647, description="A check id.")]
MonitorQuery = Annotated[str | None, Query(pattern=r"^[\w.@+-]{0,200}$")]
LimitQuery = Annotated[int, Query(ge=1, le=1000)]

_CHECK_KEYS = (
    "id",
    "monitor",
    "kind",
    "model",
    "version",
    "source",
    "rows",
    "drifted",
    "value",
    "report_hash",
    "summary",
    "event_id",
)


def check_json(c: dict[str, Any]) -> dict[str, Any]:
    return {k: c.get(k) for k in _CHECK_KEYS} | {"created_at": present.iso(c.get("created_at"))}


def _checks(request: Request, monitor: str | None, limit: int) -> list[dict[str, Any]]:
    return list(ui(request).store.monitor_checks(limit=limit, monitor=monitor or None))


def _report(request: Request, check_id: int) -> dict[str, Any]:
    state = ui(request)
    if state.store.monitor_check(check_id) is None:
        raise not_found(f"no monitor check {check_id} (see /drift)")
    try:
        check = load_report(state.store, state.artifacts, check_id)
        error = ""
    except OrchestratorError as exc:  # the report artifact is missing or corrupt
        check = dict(state.store.monitor_check(check_id)) | {"report": None}
        error = str(exc)
    report: Any = check.get("report")
    if report is not None and hasattr(report, "model_dump"):
        report = report.model_dump(mode="json")
    check["report"] = report if isinstance(report, dict) else None
    check["report_error"] = error
    return check


def drift_chart(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chart data of a drift report: PSI and KS p-value per feature, with thresholds."""
    if not report or not report.get("features"):
        return None
    features = report["features"]
    thresholds = report.get("thresholds") or {}
    return {
        "labels": [f["feature"] for f in features],
        "psi": [f.get("psi") for f in features],
        "ks_pvalue": [f.get("ks_pvalue") for f in features],
        "drifted": [bool(f.get("drifted")) for f in features],
        "psi_threshold": thresholds.get("psi"),
        "ks_threshold": thresholds.get("ks_pvalue"),
    }


def history_chart(checks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One monitor's checks, oldest first: the value each check measured (the largest PSI
    for drift, the metric for a metric monitor) and whether it fired."""
    points = [c for c in reversed(checks) if c.get("value") is not None]
    if not points:
        return None
    return {
        "labels": [f"#{c['id']} {present.iso(c['created_at'])[:16]}" for c in points],
        "values": [c["value"] for c in points],
        "fired": [bool(c["drifted"]) for c in points],
        "label": "largest PSI" if points[0]["kind"] == "drift" else "metric value",
        "ids": [c["id"] for c in points],
    }


@router.get("/drift", response_class=HTMLResponse)
def drift_page(request: Request, monitor: MonitorQuery = None, limit: LimitQuery = 100) -> Response:
    checks = _checks(request, monitor, limit)
    history = history_chart(checks) if monitor else None
    return page(
        request, "drift.html", {"checks": checks, "monitor": monitor or "", "history": history}
    )


@router.get("/drift/{check_id}", response_class=HTMLResponse)
def check_page(request: Request, check_id: CheckPath) -> Response:
    check = _report(request, check_id)
    return page(request, "check.html", {"check": check, "chart": drift_chart(check["report"])})


@router.get("/api/drift")
def api_checks(
    request: Request, monitor: MonitorQuery = None, limit: LimitQuery = 100
) -> dict[str, Any]:
    return {"checks": [check_json(c) for c in _checks(request, monitor, limit)]}


@router.get("/api/drift/{check_id}")
def api_check(request: Request, check_id: CheckPath) -> dict[str, Any]:
    check = _report(request, check_id)
    return check_json(check) | {"report": check["report"], "report_error": check["report_error"]}
