"""Event triggers: which pending events start which pipeline, evaluated as a pure function.

An `EventTrigger` listens for events of one name (emitted by `orch event emit`, a sensor,
a drift or metric check) and starts its pipeline with the event's data as parameters.
A cooldown keeps a burst of events from starting a burst of runs: within the cooldown
after a run this trigger started, further events are dropped with the reason recorded.
No I/O and no clock: the daemon passes the events, the last start time and `now`.

Invariants:

* **Event names** follow one rule (`check_event_name`), wherever a name enters: the CLI,
  the HTTP endpoint and every definition that names an event.
* **Cooldown** counts a run started within `cooldown` seconds of `now`, before or after it:
  a start stamped later than `now` (another daemon's clock a little ahead, or an evaluation
  at an earlier `--now`) is only inside the cooldown if it is that close.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from typing import Any

from orchestrator.errors import ParamError, TriggerError
from orchestrator.triggers.fields import check_fields, seconds

EVENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
MAX_EVENT_NAME = 200


class EventNameError(ParamError):
    """An event name breaks the naming rule."""


def check_event_name(name: str) -> str:
    """`name` if it is a valid event name, else `EventNameError` saying the rule."""
    if len(name) > MAX_EVENT_NAME or not EVENT_NAME.fullmatch(name):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise EventNameError(
            f"invalid event name {shown!r}: an event name is 1 to {MAX_EVENT_NAME} letters, "
            "digits and . _ : - (starting with a letter or digit), e.g. 'new-data'"
        )
    return name


def parse_event_data(items: list[str], option: str = "--data") -> dict[str, Any]:
    """`KEY=VALUE` items of `orch event emit --data` as the event's data: each value is
    JSON when it parses as JSON (numbers, lists, true), else the string itself."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


@dataclasses.dataclass(frozen=True)
class EventTrigger:
    name: str
    event: str
    pipeline: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    params_from_event: bool = True
    cooldown: float = seconds(0.0)

    def __post_init__(self) -> None:
        what = f"event trigger {self.name!r}"
        check_fields(self, what)
        if not self.name or not self.event:
            raise TriggerError("an event trigger needs a name and an event name")
        try:
            check_event_name(self.event)
        except EventNameError as exc:
            raise TriggerError(f"{what}: {exc}") from None
        if self.cooldown < 0:
            raise TriggerError(
                f"event trigger '{self.name}': cooldown must be >= 0 seconds, got {self.cooldown}"
            )


@dataclasses.dataclass(frozen=True)
class Decision:
    event_id: int
    start: bool
    reason: str
    params: dict[str, Any]


def decide(
    trigger: EventTrigger,
    events: list[dict[str, Any]],
    last_start: dt.datetime | None,
    now: dt.datetime,
) -> list[Decision]:
    """For each of `events` (oldest first) that this trigger listens to: start or drop."""
    out = []
    cooldown = dt.timedelta(seconds=trigger.cooldown)
    for ev in events:
        if ev["name"] != trigger.event:
            continue
        if last_start is not None and cooldown and abs(now - last_start) < cooldown:
            out.append(Decision(ev["id"], False, _cooled(trigger, now - last_start), {}))
            continue
        params = dict(trigger.params)
        if trigger.params_from_event:
            params.update(ev.get("data") or {})
        out.append(Decision(ev["id"], True, f"started by trigger '{trigger.name}'", params))
        last_start = now
    return out


def _cooled(trigger: EventTrigger, since: dt.timedelta) -> str:
    ago = since.total_seconds()
    when = f"{ago:.0f}s ago" if ago >= 0 else f"{-ago:.0f}s after the time evaluated"
    return (
        f"cooldown: trigger '{trigger.name}' started a run {when} (cooldown {trigger.cooldown:g}s)"
    )


@dataclasses.dataclass(frozen=True)
class FileSensor:
    """Starts `pipeline` when files matching `glob` appear or change (by content hash).

    Files younger than `debounce` seconds are left for a later tick (still being written);
    all new or changed files found in one tick start one run, passed as the pipeline
    parameter `param` (a list of paths). The same bytes at the same path never start a
    second run.
    """

    name: str
    glob: str
    pipeline: str
    param: str = "files"
    debounce: float = seconds(2.0)

    def __post_init__(self) -> None:
        check_fields(self, f"file sensor {self.name!r}")
        if not self.glob:
            raise TriggerError(f"file sensor '{self.name}': glob is empty")
        if self.debounce < 0:
            raise TriggerError(
                f"file sensor '{self.name}': debounce must be >= 0 seconds, got {self.debounce}"
            )
