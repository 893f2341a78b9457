"""Schedules: cron triggers evaluated as pure functions of (cursor, now).

This module owns the `Schedule` definition and its evaluator. It does no I/O and never reads
the clock: `now` is always passed in, so a daemon (or a test) drives it. The daemon stores the
returned cursor and claims each `RunRequest.run_key` exactly once in the metadata store.

Invariants:

* **Fire times are instants.** Cron fields are read as wall-clock times in the schedule's time
  zone and mapped to aware UTC datetimes; every function returns UTC, sorted, without
  duplicates.
* **Spring forward** (a wall time that does not exist): the tick fires once, at the first
  instant after the gap (02:30 on 2026-03-08 in New York fires at 03:00 EDT = 07:00 UTC). Every
  tick inside the gap collapses into that one instant, together with a tick at the gap's end.
  An expression whose hour field matches every hour (an hourly or more frequent job) instead
  drops the ticks inside the gap: the hour did not happen, and the job still fires once in
  every real hour (`45 * * * *` fires at 01:45 CET, then 03:45 CEST, not also at 03:00).
* **Fall back** (a wall time that happens twice): the tick fires at the first occurrence only,
  unless the expression's hour field matches every hour (an hourly or more frequent job), in
  which case it fires in each real hour: an hourly job has 25 fire times on a fall-back day.
* **Cursor**: every fire time <= cursor has been handled. The new cursor is the latest due fire
  time considered, or unchanged when nothing was due. On the first evaluation (cursor `None`)
  the past is not caught up: the evaluation behaves as if the cursor were `now - grace`.
* **Run keys** are `"{schedule}@{scheduled time in UTC, ISO 8601}"`: the same tick always gives
  the same key, and the run receives the scheduled time (not the wall clock) under the reserved
  parameter `scheduled_time`, so re-running a tick is deterministic.
* **Paused** schedules request nothing, but the cursor still advances: resuming does not replay
  the ticks missed while paused.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal, NamedTuple, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter

from orchestrator.errors import TriggerError, did_you_mean
from orchestrator.triggers.fields import DefinitionError, check_fields

CatchUp = Literal["skip", "latest", "all"]
Concurrency = Literal["skip", "queue", "allow"]

SCHEDULED_TIME_PARAM = "scheduled_time"
"""The reserved run parameter carrying the tick's scheduled time (ISO 8601, UTC)."""

DEFAULT_GRACE = timedelta(seconds=60)
"""How late a tick may be evaluated and still count as due "now" (catch-up policy "skip")."""

_MAX_OFFSET_SHIFT = timedelta(hours=3)  # widest UTC-offset change we search around
_NEXT_FIRE_SPANS = tuple(timedelta(hours=8**k) for k in range(7))  # 1 h .. ~30 years

SKIP_MISSED = "missed (catch-up policy skip)"
SKIP_SUPERSEDED = "superseded by a later tick"
SKIP_RUNNING = "previous run still running"
SKIP_PAUSED = "paused"


class ScheduleError(TriggerError):
    """A schedule definition is wrong, or it was evaluated with invalid arguments."""


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """A cron trigger: run `pipeline` with `params` at each tick of `cron` in `timezone`."""

    name: str
    pipeline: str
    cron: str
    timezone: str = "UTC"
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    catchup: CatchUp = "skip"
    max_catchup: int = 100
    concurrency: Concurrency = "skip"
    paused: bool = False

    def __post_init__(self) -> None:
        try:
            check_fields(self, f"schedule {self.name!r}")
        except DefinitionError as exc:
            raise ScheduleError(str(exc)) from None
        if not self.name:
            raise ScheduleError("a schedule needs a non-empty name")
        _check_cron(self.name, self.cron)
        _check_zone(self.name, self.timezone)
        _check_choice(self.name, "catchup", self.catchup, get_args(CatchUp))
        _check_choice(self.name, "concurrency", self.concurrency, get_args(Concurrency))
        if self.max_catchup < 1:
            raise ScheduleError(
                f"schedule '{self.name}': max_catchup must be >= 1, got {self.max_catchup}"
            )
        if SCHEDULED_TIME_PARAM in self.params:
            raise ScheduleError(
                f"schedule '{self.name}': param '{SCHEDULED_TIME_PARAM}' is reserved "
                "(each run receives its scheduled time under it); rename the param"
            )

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)


@dataclasses.dataclass(frozen=True, slots=True)
class RunRequest:
    """One run the daemon should start, identified by a deterministic `run_key`."""

    run_key: str
    schedule: str
    pipeline: str
    scheduled_time: datetime
    params: dict[str, Any]
    queued: bool = False


class Skip(NamedTuple):
    """A tick that was not requested, and why."""

    scheduled_time: datetime
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class TickResult:
    """What one evaluation decided: runs to start, ticks skipped, and the cursor to store."""

    requests: list[RunRequest]
    skipped: list[Skip]
    cursor: datetime


def _check_cron(name: str, expr: str) -> None:
    fields = expr.split()
    if not expr.startswith("@") and len(fields) != 5:
        raise ScheduleError(
            f"schedule '{name}': invalid cron expression '{expr}': expected 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    try:
        croniter(expr, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError as exc:
        raise ScheduleError(f"schedule '{name}': invalid cron expression '{expr}': {exc}") from exc


def _check_zone(name: str, zone: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        hint = did_you_mean(zone, available_timezones())
        raise ScheduleError(
            f"schedule '{name}': unknown time zone '{zone}'{hint}; "
            "expected an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from exc


def _check_choice(name: str, field: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        listed = ", ".join(repr(c) for c in sorted(choices))
        raise ScheduleError(
            f"schedule '{name}': unknown {field} policy {value!r}; expected one of {listed}"
        )


def _aware(label: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(f"{label} must be a timezone-aware datetime, got naive {value}")
    return value.astimezone(UTC)


@functools.lru_cache(maxsize=4096)
def _expanded(cron: str) -> tuple[list[Any], dict[Any, Any]]:
    """croniter's parse of an expression, done once (parsing is most of an evaluation)."""
    return croniter.expand(cron)  # type: ignore[no-any-return]


def _hourly_or_more(schedule: Schedule) -> bool:
    hours = _expanded(schedule.cron)[0][1]
    return hours == ["*"] or len(set(hours)) == 24


def _gap_end(zone: tzinfo, before: datetime, after: datetime) -> datetime:
    """The transition instant in (before, after], found by bisection on whole seconds."""
    target = after.astimezone(zone).utcoffset()
    while after - before > timedelta(seconds=1):
        mid = before + timedelta(seconds=(after - before).total_seconds() // 2)
        if mid.astimezone(zone).utcoffset() == target:
            after = mid
        else:
            before = mid
    return after


def _instants(wall: datetime, zone: tzinfo, every_hour: bool) -> list[datetime]:
    """Map one naive wall-clock tick to its UTC instants (see the DST rules above)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first.astimezone(zone).replace(tzinfo=None) != wall:  # in a spring-forward gap
        return [] if every_hour else [_gap_end(zone, min(first, second), max(first, second))]
    return [first, second] if every_hour else [first]


def _wall_margin(first: datetime, last: datetime) -> timedelta:
    """How far outside [wall(first), wall(last)] a wall time of an instant in between can be.

    Within a day there is at most one offset change, so the offsets at both ends bound it;
    longer windows use the widest change we support.
    """
    if last - first > timedelta(days=1):
        return _MAX_OFFSET_SHIFT
    return abs(_offset(last) - _offset(first))


def _offset(moment: datetime) -> timedelta:
    return moment.utcoffset() or timedelta(0)


_local = threading.local()


def _walls(schedule: Schedule, start: datetime) -> Iterator[datetime]:
    """Wall-clock fire times after `start`; the parsed iterator is reused per thread and
    expression (parsing dominates evaluation), so consume one generator at a time."""
    cache: dict[str, croniter] = _local.__dict__.setdefault("iters", {})
    it = cache.get(schedule.cron)
    if it is None:
        it = cache[schedule.cron] = croniter(schedule.cron, start)
    else:
        it.set_current(start, force=True)
    while True:
        yield it.get_next(datetime)


def fire_times(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """The schedule's fire times in (after, until], in UTC, sorted, computed in its time zone."""
    after, until = _aware("after", after), _aware("until", until)
    zone, repeat = schedule.zone, _hourly_or_more(schedule)
    first, last = after.astimezone(zone), until.astimezone(zone)
    margin = _wall_margin(first, last)
    start = first.replace(tzinfo=None) - margin - timedelta(minutes=1)
    stop = last.replace(tzinfo=None) + margin
    found: set[datetime] = set()
    for wall in _walls(schedule, start):
        if wall > stop:
            break
        found.update(t for t in _instants(wall, zone, repeat) if after < t <= until)
    return sorted(found)


def next_fire(schedule: Schedule, now: datetime) -> datetime:
    """The first fire time strictly after `now`, in UTC."""
    now = _aware("now", now)
    for span in _NEXT_FIRE_SPANS:
        times = fire_times(schedule, now, now + span)
        if times:
            return times[0]
    raise ScheduleError(
        f"schedule '{schedule.name}': cron expression '{schedule.cron}' does not fire "
        f"within {_NEXT_FIRE_SPANS[-1].days} days of {now.isoformat()}"
    )


def run_key(schedule: Schedule, scheduled_time: datetime) -> str:
    """The deterministic key of one tick: `name@<UTC ISO time>`."""
    return f"{schedule.name}@{_aware('scheduled_time', scheduled_time).isoformat()}"


def run_request(schedule: Schedule, scheduled_time: datetime, queued: bool = False) -> RunRequest:
    """The run request for one tick; its params carry the scheduled time, not the wall clock."""
    at = _aware("scheduled_time", scheduled_time)
    params = {**schedule.params, SCHEDULED_TIME_PARAM: at.isoformat()}
    return RunRequest(run_key(schedule, at), schedule.name, schedule.pipeline, at, params, queued)


def _select(
    schedule: Schedule, due: list[datetime], now: datetime, grace: timedelta
) -> tuple[list[datetime], list[Skip]]:
    """Apply the catch-up policy to the due ticks (oldest first): (to run, skipped)."""
    if schedule.catchup == "all":
        cut = max(len(due) - schedule.max_catchup, 0)
        reason = f"over the catch-up cap {schedule.max_catchup}"
        return due[cut:], [Skip(t, reason) for t in due[:cut]]
    newest, older = due[-1], due[:-1]
    if schedule.catchup == "latest":
        return [newest], [Skip(t, SKIP_SUPERSEDED) for t in older]
    if now - newest <= grace:
        return [newest], [Skip(t, SKIP_MISSED) for t in older]
    return [], [Skip(t, SKIP_MISSED) for t in due]


def evaluate(
    schedule: Schedule,
    cursor: datetime | None,
    now: datetime,
    running: bool = False,
    grace: timedelta = DEFAULT_GRACE,
) -> TickResult:
    """Decide what to run for the ticks in (cursor, now]; pure: the same inputs, the same result.

    `running` says a run of this schedule is still going (the concurrency policy applies).
    """
    now = _aware("now", now)
    start = now - grace if cursor is None else _aware("cursor", cursor)
    due = fire_times(schedule, start, now)
    if not due:
        return TickResult([], [], start)
    if schedule.paused:
        return TickResult([], [Skip(t, SKIP_PAUSED) for t in due], due[-1])
    chosen, skipped = _select(schedule, due, now, grace)
    if running and schedule.concurrency == "skip":
        skipped += [Skip(t, SKIP_RUNNING) for t in chosen]
        chosen = []
    queued = running and schedule.concurrency == "queue"
    requests = [run_request(schedule, t, queued) for t in chosen]
    skipped.sort(key=lambda s: s.scheduled_time)
    return TickResult(requests, skipped, due[-1])


__all__ = [
    "DEFAULT_GRACE",
    "SCHEDULED_TIME_PARAM",
    "RunRequest",
    "Schedule",
    "ScheduleError",
    "Skip",
    "TickResult",
    "evaluate",
    "fire_times",
    "next_fire",
    "run_key",
    "run_request",
]
