"""Schedules, triggers and sensors, and the events they handle.

What the UI knows of a schedule comes from two places: the definitions files given to
`orch ui FILE.py` (cron, time zone, policy, next fire times), and the store (the
`schedule_state` row: cursor and pause state; tick claims `name@time`; runs whose
trigger names it). Without the files a schedule shows what the store recorded. Pause
and resume (`POST /schedules/NAME/pause|resume`) set the same `schedule_state.paused`
flag as `orch schedules --pause/--resume`, which the daemon reads before every tick.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.triggers.events import EventTrigger, FileSensor
from orchestrator.triggers.monitors import DriftMonitor, MetricMonitor
from orchestrator.triggers.schedules import Schedule, next_fire
from orchestrator.ui import present, queries
from orchestrator.ui.web import NAME, not_found, page, ui

router = APIRouter()

SchedulePath = Annotated[str, Path(pattern=NAME, description="A schedule name.")]
LimitQuery = Annotated[int, Query(ge=1, le=1000)]

_FIELD = {"schedule": "schedule", "trigger": "trigger", "sensor": "sensor"}


def _defined(request: Request) -> dict[str, tuple[str, Any]]:
    """name -> (kind, Bound) of the definitions the UI was started with."""
    out: dict[str, tuple[str, Any]] = {}
    for b in ui(request).definitions:
        sch = b.schedule
        kind = (
            "schedule"
            if isinstance(sch, Schedule)
            else "trigger"
            if isinstance(sch, EventTrigger)
            else "sensor"
            if isinstance(sch, FileSensor)
            else "monitor"
            if isinstance(sch, DriftMonitor | MetricMonitor)
            else "other"
        )
        out[sch.name] = (kind, b)
    return out


def _next_fires(sch: Schedule, now: dt.datetime, count: int = 3) -> list[dt.datetime]:
    out: list[dt.datetime] = []
    at = now
    try:
        for _ in range(count):
            at = next_fire(sch, at)
            out.append(at)
    except Exception:  # a cron that never fires again: show what we have
        pass
    return out


def schedule_entries(request: Request) -> list[dict[str, Any]]:
    store = ui(request).store
    defined = _defined(request)
    states = queries.schedule_states(store)
    recorded = queries.recorded_triggers(store)
    names: dict[str, str] = {n: "schedule" for n in states}
    for kind, found in recorded.items():
        names.update({n: kind for n in found if n not in names})
    names.update({n: kind for n, (kind, _b) in defined.items()})
    now = dt.datetime.now(dt.UTC)
    return [
        _entry(store, name, kind, defined.get(name), states.get(name), now)
        for name, kind in sorted(names.items())
    ]


def _entry(
    store: Any,
    name: str,
    kind: str,
    definition: tuple[str, Any] | None,
    state: dict[str, Any] | None,
    now: dt.datetime,
) -> dict[str, Any]:
    field = _FIELD.get(kind)
    runs = queries.runs_by_trigger(store, field, name, 10) if field else []
    stored_paused = bool(state and state["paused"])
    entry: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "defined": definition is not None,
        "paused": stored_paused,
        "cursor": state["cursor"] if state else None,
        "runs": runs,
        "ticks": [],
        "next_fires": [],
        "pipeline": None,
        "detail": "",
    }
    if kind == "schedule":
        by_key = {(r["trigger"] or {}).get("run_key"): r for r in runs}
        claims = queries.tick_claims(store, name, 10)
        launches = queries.launch_states(store, f"schedule:{name}", [c["key"] for c in claims])
        entry["ticks"] = [
            c | {"run": by_key.get(c["key"]), "launch": launches.get(c["key"])} for c in claims
        ]
    if definition is not None:
        sch, bound = definition[1].schedule, definition[1]
        entry["pipeline"] = bound.target
        if isinstance(sch, Schedule):
            entry["paused"] = stored_paused or sch.paused
            entry["detail"] = f"cron {sch.cron} ({sch.timezone}), {sch.catchup}/{sch.concurrency}"
            entry["next_fires"] = [] if entry["paused"] else _next_fires(sch, now)
        elif isinstance(sch, EventTrigger):
            entry["detail"] = f"on event '{sch.event}', cooldown {sch.cooldown:g}s"
        elif isinstance(sch, FileSensor):
            entry["detail"] = f"files {sch.glob}, debounce {sch.debounce:g}s"
        elif isinstance(sch, DriftMonitor | MetricMonitor):
            what = (
                "drift" if isinstance(sch, DriftMonitor) else f"{sch.metric} below {sch.threshold}"
            )
            entry["detail"] = f"{what} of model {sch.model}; fires event '{sch.event}'"
    return entry


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request) -> Response:
    return page(
        request,
        "schedules.html",
        {
            "entries": schedule_entries(request),
            "has_definitions": bool(ui(request).definitions),
        },
    )


def _set_paused(request: Request, name: str, paused: bool) -> Response:
    store = ui(request).store
    known = set(queries.schedule_states(store)) | queries.recorded_triggers(store)["schedule"]
    known |= {n for n, (kind, _b) in _defined(request).items() if kind == "schedule"}
    if name not in known:
        raise not_found(f"no schedule '{name}' (see /schedules)")
    store.set_schedule_state(name, paused=paused)
    return RedirectResponse(f"/schedules#s-{name}", status_code=303)


@router.post("/schedules/{name}/pause")
def pause(request: Request, name: SchedulePath) -> Response:
    return _set_paused(request, name, True)


@router.post("/schedules/{name}/resume")
def resume(request: Request, name: SchedulePath) -> Response:
    return _set_paused(request, name, False)


@router.get("/api/schedules")
def api_schedules(request: Request) -> dict[str, Any]:
    out = []
    for e in schedule_entries(request):
        out.append(
            {
                "name": e["name"],
                "kind": e["kind"],
                "defined": e["defined"],
                "paused": e["paused"],
                "pipeline": e["pipeline"],
                "cursor": present.iso(e["cursor"]),
                "next_fires": [present.iso(t) for t in e["next_fires"]],
                "ticks": [
                    {
                        "key": c["key"],
                        "scheduled_time": c["scheduled_time"],
                        "claimed_at": present.iso(c["claimed_at"]),
                        "run_id": c["run"]["id"] if c["run"] else None,
                        "launch": (c["launch"] or {}).get("status"),
                    }
                    for c in e["ticks"]
                ],
                "runs": [{"id": r["id"], "status": r["status"]} for r in e["runs"]],
            }
        )
    return {"schedules": out}


# -- events ---------------------------------------------------------------------------
@router.get("/events", response_class=HTMLResponse)
def events_page(request: Request, limit: LimitQuery = 100) -> Response:
    return page(request, "events.html", {"events": ui(request).store.list_events(limit)})


@router.get("/api/events")
def api_events(request: Request, limit: LimitQuery = 100) -> dict[str, Any]:
    keys = ("id", "name", "data", "source", "status", "reason", "run_id")
    return {
        "events": [
            {k: e.get(k) for k in keys}
            | {
                "created_at": present.iso(e.get("created_at")),
                "handled_at": present.iso(e.get("handled_at")),
            }
            for e in ui(request).store.list_events(limit)
        ]
    }
