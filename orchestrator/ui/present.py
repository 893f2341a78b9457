"""How the UI words things: durations, times, sizes, types, triggers and step explanations.

Pure functions over the store's plain dicts (no I/O), used by views and as template
filters. The wording follows the CLI's (`orch runs`, `orch show`, `orch explain`), so a
run reads the same in a terminal and in a browser.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

STEP_STATES = (
    "pending",
    "running",
    "succeeded",
    "cached",
    "failed",
    "skipped",
    "interrupted",
)
COUNTED_STATES = ("succeeded", "cached", "failed", "skipped")


def duration(seconds: float | None) -> str:
    """`12.3ms`, `4.56s`, `2m 03s`, `1h 02m` (empty when unknown), as `orch runs` prints."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def when(value: dt.datetime | None) -> str:
    """A UTC time as `2026-11-23 17:54:55` (empty when unknown)."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def run_seconds(run: dict[str, Any], now: dt.datetime | None = None) -> float | None:
    """A run's duration; for a running run, how long it has been going."""
    start, end = run.get("started_at"), run.get("ended_at")
    if start is None:
        return None
    if end is None:
        if run.get("status") != "running":
            return None
        end = now or dt.datetime.now(dt.UTC)
    seconds: float = (end - start).total_seconds()
    return max(seconds, 0.0)


def size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def short_type(path: str | None) -> str:
    """`pandas.core.frame:DataFrame` -> `pandas.DataFrame`; `builtins:int` -> `int`."""
    if not path:
        return ""
    mod, sep, qual = path.partition(":")
    if not sep:
        return path
    return qual if mod == "builtins" else f"{mod.split('.')[0]}.{qual}"


def to_json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def param_text(value: Any) -> str:
    """A parameter value as a person types it in a form: strings bare, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, default=str)


def trigger_info(trigger: dict[str, Any] | None) -> dict[str, Any]:
    """`{"kind", "label", "detail", "href"}` of a run's trigger (`runs.trigger`)."""
    trig = trigger or {}
    kind = str(trig.get("kind") or "manual")
    if kind == "schedule":
        name = str(trig.get("schedule", ""))
        at = trig.get("scheduled_time", "")
        return _trigger("schedule", "schedule tick", f"{name} @ {at}", f"/schedules#s-{name}")
    if kind == "event":
        event_id = trig.get("event_id")
        detail = f"{trig.get('event', '')} (event {event_id}, trigger {trig.get('trigger', '')})"
        href = f"/events#event-{event_id}" if event_id is not None else "/events"
        return _trigger("event", "event", detail, href)
    if kind == "sensor":
        name = str(trig.get("sensor", ""))
        files = trig.get("files") or []
        return _trigger("sensor", "sensor", f"{name} ({len(files)} files)", f"/schedules#s-{name}")
    if kind == "ui":
        return _trigger("ui", "web UI", "started from the web UI", None)
    return _trigger(kind, kind, "", None)


def _trigger(kind: str, label: str, detail: str, href: str | None) -> dict[str, Any]:
    return {"kind": kind, "label": label, "detail": detail, "href": href}


_VERBS = {
    "cached": "was cached",
    "succeeded": "ran",
    "failed": "ran and failed",
    "skipped": "was skipped",
    "pending": "has not started yet",
    "running": "is running",
    "interrupted": "was interrupted",
}


def explanation(step: dict[str, Any]) -> dict[str, Any]:
    """Why a step ran or was cached, worded as `orch explain` words it.

    `{"verb": "was cached", "lines": [...], "compared_with_run": id | None,
    "from_run": id | None}`.
    """
    reason = step.get("reason") or {}
    lines = reason.get("details") or [reason.get("summary") or "no explanation recorded"]
    return {
        "verb": _VERBS.get(step.get("state", ""), step.get("state", "")),
        "lines": [str(line) for line in lines],
        "compared_with_run": reason.get("compared_with_run"),
        "from_run": reason.get("from_run"),
        "summary": reason.get("summary") or "",
    }


def why(step: dict[str, Any]) -> str:
    """One line for a step table, as `orch run` prints it: the error, else the reason."""
    error = str(step.get("error") or "").strip()
    if error and step.get("state") == "failed":
        return error.splitlines()[0]
    return str((step.get("reason") or {}).get("summary") or "")


FILTERS = {
    "duration": duration,
    "when": when,
    "size": size,
    "short_type": short_type,
    "to_json": to_json,
    "param_text": param_text,
    "why": why,
}
