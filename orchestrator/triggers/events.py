"""Event triggers: which pending events start which pipeline, evaluated as a pure function.

An `EventTrigger` listens for events of one name (emitted by `orch event emit`, a sensor,
a drift or metric check) and starts its pipeline with the event's data as parameters.
A cooldown keeps a burst of events from starting a burst of runs: within the cooldown
after a run this trigger started, further events are dropped with the reason recorded.
No I/O and no clock: the daemon passes the events, the last start time and `now`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from orchestrator.errors import TriggerError


@dataclasses.dataclass(frozen=True)
class EventTrigger:
    name: str
    event: str
    pipeline: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    params_from_event: bool = True
    cooldown: float = 0.0  # seconds

    def __post_init__(self) -> None:
        if not self.name or not self.event:
            raise TriggerError("an event trigger needs a name and an event name")
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
        if last_start is not None and cooldown and now - last_start < cooldown:
            ago = (now - last_start).total_seconds()
            out.append(
                Decision(
                    ev["id"],
                    False,
                    f"cooldown: trigger '{trigger.name}' started a "
                    f"run {ago:.0f}s ago (cooldown {trigger.cooldown:g}s)",
                    {},
                )
            )
            continue
        params = dict(trigger.params)
        if trigger.params_from_event:
            params.update(ev.get("data") or {})
        out.append(Decision(ev["id"], True, f"started by trigger '{trigger.name}'", params))
        last_start = now
    return out


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
    debounce: float = 2.0

    def __post_init__(self) -> None:
        if not self.glob:
            raise TriggerError(f"file sensor '{self.name}': glob is empty")
        if self.debounce < 0:
            raise TriggerError(
                f"file sensor '{self.name}': debounce must be >= 0 seconds, got {self.debounce}"
            )
