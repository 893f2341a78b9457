"""The schedule evaluator: fire times across DST, catch-up, concurrency, pause, validation.

Every test injects the clock: `now` is a literal datetime, nothing sleeps.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from orchestrator.triggers.schedules import (
    SCHEDULED_TIME_PARAM,
    Schedule,
    ScheduleError,
    Skip,
    evaluate,
    fire_times,
    next_fire,
    run_key,
)

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


def sched(cron: str = "0 * * * *", **kw: Any) -> Schedule:
    return Schedule(name=kw.pop("name", "nightly"), pipeline="train", cron=cron, **kw)


def local_day(zone: ZoneInfo, year: int, month: int, day: int) -> tuple[datetime, datetime]:
    """(just before local midnight, just before the next local midnight), for (after, until]."""
    start = datetime(year, month, day, tzinfo=zone)
    end = start.replace(tzinfo=None) + timedelta(days=1)
    second = timedelta(seconds=1)
    return start.astimezone(UTC) - second, end.replace(tzinfo=zone).astimezone(UTC) - second


# --- fire times ---------------------------------------------------------------------------------


def test_every_fifteen_minutes_across_an_hour() -> None:
    times = fire_times(sched("*/15 * * * *"), utc(2026, 5, 4, 10), utc(2026, 5, 4, 11))
    assert times == [utc(2026, 5, 4, 10, m) for m in (15, 30, 45)] + [utc(2026, 5, 4, 11)]
    assert all(t.tzinfo is UTC for t in times)


def test_bounds_are_after_exclusive_until_inclusive() -> None:
    s = sched("0 * * * *")
    assert fire_times(s, utc(2026, 1, 1, 10), utc(2026, 1, 1, 10)) == []
    assert fire_times(s, utc(2026, 1, 1, 9, 59), utc(2026, 1, 1, 10)) == [utc(2026, 1, 1, 10)]


def test_times_are_computed_in_the_schedule_zone() -> None:
    s = sched("0 9 * * *", timezone="America/New_York")
    summer = fire_times(s, utc(2026, 7, 1), utc(2026, 7, 2))
    winter = fire_times(s, utc(2026, 1, 1), utc(2026, 1, 2))
    assert summer == [utc(2026, 7, 1, 13)] and winter == [utc(2026, 1, 1, 14)]


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # 02:30 does not exist: the tick fires once, at the first instant after the gap (03:00).
        ("America/New_York", (2026, 3, 8), utc(2026, 3, 8, 7)),
        ("Europe/Berlin", (2026, 3, 29), utc(2026, 3, 29, 1)),
    ],
)
def test_spring_forward_daily_job_in_the_gap_fires_once_at_gap_end(
    zone: str, day: tuple[int, int, int], expected: datetime
) -> None:
    s = sched("30 2 * * *", timezone=zone)
    assert fire_times(s, *local_day(ZoneInfo(zone), *day)) == [expected]
    assert expected.astimezone(ZoneInfo(zone)).strftime("%H:%M") == "03:00"


def test_spring_forward_days_around_are_normal() -> None:
    s = sched("30 2 * * *", timezone="America/New_York")
    times = fire_times(s, utc(2026, 3, 7), utc(2026, 3, 10))
    assert times == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]


@pytest.mark.parametrize(
    ("zone", "cron", "day", "expected"),
    [
        # 01:30 happens twice in New York: the job fires at the first one (EDT) only.
        ("America/New_York", "30 1 * * *", (2026, 11, 1), utc(2026, 11, 1, 5, 30)),
        # In Berlin the repeated hour is 02:xx; 01:30 is unambiguous.
        ("Europe/Berlin", "30 1 * * *", (2026, 10, 25), utc(2026, 10, 24, 23, 30)),
        ("Europe/Berlin", "30 2 * * *", (2026, 10, 25), utc(2026, 10, 25, 0, 30)),
    ],
)
def test_fall_back_daily_job_fires_exactly_once(
    zone: str, cron: str, day: tuple[int, int, int], expected: datetime
) -> None:
    s = sched(cron, timezone=zone)
    assert fire_times(s, *local_day(ZoneInfo(zone), *day)) == [expected]


@pytest.mark.parametrize(
    ("zone", "day", "count"),
    [
        ("America/New_York", (2026, 11, 1), 25),
        ("Europe/Berlin", (2026, 10, 25), 25),
        ("America/New_York", (2026, 3, 8), 23),
        ("Europe/Berlin", (2026, 3, 29), 23),
        ("Europe/Berlin", (2026, 6, 1), 24),
    ],
)
def test_hourly_job_fires_once_per_real_hour(
    zone: str, day: tuple[int, int, int], count: int
) -> None:
    times = fire_times(sched("0 * * * *", timezone=zone), *local_day(ZoneInfo(zone), *day))
    assert len(times) == count
    assert all(b - a == timedelta(hours=1) for a, b in zip(times, times[1:], strict=False))


@pytest.mark.parametrize(("cron", "per_hour"), [("45 * * * *", 1), ("*/20 * * * *", 3)])
@pytest.mark.parametrize(
    ("zone", "day"), [("Europe/Berlin", (2026, 3, 29)), ("America/New_York", (2026, 3, 8))]
)
def test_wildcard_hour_job_skips_the_missing_hour_instead_of_doubling_the_next(
    cron: str, per_hour: int, zone: str, day: tuple[int, int, int]
) -> None:
    """`45 * * * *`: 02:45 does not exist; 03:45 is the tick of that real hour, not 03:00."""
    times = fire_times(sched(cron, timezone=zone), *local_day(ZoneInfo(zone), *day))
    assert len(times) == 23 * per_hour
    gap = timedelta(minutes=60 // per_hour)
    assert all(b - a == gap for a, b in zip(times, times[1:], strict=False))


def test_hourly_job_evaluated_each_minute_starts_one_run_per_real_hour() -> None:
    s = sched("45 * * * *", timezone="Europe/Berlin")
    cursor, now, requested = None, utc(2026, 3, 28, 22), []
    while now < utc(2026, 3, 29, 4):
        result = evaluate(s, cursor, now)
        requested += [r.scheduled_time for r in result.requests]
        cursor, now = result.cursor, now + timedelta(minutes=1)
    local = [t.astimezone(BERLIN).strftime("%H:%M%z") for t in requested]
    assert local == [
        "23:45+0100", "00:45+0100", "01:45+0100", "03:45+0200", "04:45+0200", "05:45+0200",
    ]  # fmt: skip


def test_quarter_hourly_job_covers_the_repeated_hour_twice() -> None:
    s = sched("*/15 * * * *", timezone="America/New_York")
    times = fire_times(s, utc(2026, 11, 1, 4, 59), utc(2026, 11, 1, 7))
    assert times == [utc(2026, 11, 1, 5) + timedelta(minutes=15 * i) for i in range(9)]


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin"])
@pytest.mark.parametrize("cron", ["*/15 * * * *", "30 1 * * *", "30 2 * * *", "0 */2 * * *"])
def test_small_windows_agree_with_one_large_window(zone: str, cron: str) -> None:
    s = sched(cron, timezone=zone)
    for start in (utc(2026, 3, 7), utc(2026, 3, 28), utc(2026, 10, 24), utc(2026, 10, 31)):
        whole = fire_times(s, start, start + timedelta(days=3))
        step, pieces = timedelta(minutes=20), []
        for i in range(3 * 24 * 3):
            pieces += fire_times(s, start + i * step, start + (i + 1) * step)
        assert pieces == whole and len(whole) == len(set(whole))


def test_next_fire() -> None:
    s = sched("30 2 * * *", timezone="America/New_York")
    assert next_fire(s, utc(2026, 3, 7, 12)) == utc(2026, 3, 8, 7)
    assert next_fire(s, utc(2026, 3, 8, 7)) == utc(2026, 3, 9, 6, 30)
    assert next_fire(sched("0 0 29 2 *"), utc(2026, 3, 1)) == utc(2028, 2, 29)


# --- evaluation: catch-up ----------------------------------------------------------------------

CURSOR = utc(2026, 5, 4, 9)  # last handled tick; the daemon then stopped across 10, 11, 12
NOW = utc(2026, 5, 4, 12, 0, 30)
T10, T11, T12 = utc(2026, 5, 4, 10), utc(2026, 5, 4, 11), utc(2026, 5, 4, 12)


def times_of(requests: list[Any]) -> list[datetime]:
    return [r.scheduled_time for r in requests]


def test_catchup_skip_runs_only_the_tick_due_now() -> None:
    result = evaluate(sched(catchup="skip"), CURSOR, NOW)
    assert times_of(result.requests) == [T12]
    assert result.skipped == [
        Skip(T10, "missed (catch-up policy skip)"),
        Skip(T11, "missed (catch-up policy skip)"),
    ]
    assert result.cursor == T12


def test_catchup_skip_runs_nothing_when_the_newest_tick_is_past_grace() -> None:
    result = evaluate(sched(catchup="skip"), CURSOR, utc(2026, 5, 4, 12, 5))
    assert result.requests == []
    assert [s.scheduled_time for s in result.skipped] == [T10, T11, T12]
    assert {s.reason for s in result.skipped} == {"missed (catch-up policy skip)"}
    assert result.cursor == T12
    longer = evaluate(
        sched(catchup="skip"), CURSOR, utc(2026, 5, 4, 12, 5), grace=timedelta(minutes=10)
    )
    assert times_of(longer.requests) == [T12]


def test_catchup_latest_runs_the_newest_tick() -> None:
    result = evaluate(sched(catchup="latest"), CURSOR, utc(2026, 5, 4, 12, 40))
    assert times_of(result.requests) == [T12]
    assert result.skipped == [
        Skip(T10, "superseded by a later tick"),
        Skip(T11, "superseded by a later tick"),
    ]
    assert result.cursor == T12


def test_catchup_all_runs_every_tick_oldest_first() -> None:
    result = evaluate(sched(catchup="all"), CURSOR, NOW)
    assert times_of(result.requests) == [T10, T11, T12]
    assert result.skipped == [] and result.cursor == T12


def test_catchup_all_with_cap_skips_the_oldest() -> None:
    result = evaluate(sched(catchup="all", max_catchup=2), CURSOR, NOW)
    assert times_of(result.requests) == [T11, T12]
    assert result.skipped == [Skip(T10, "over the catch-up cap 2")]
    assert result.cursor == T12


def test_nothing_due_leaves_the_cursor_unchanged() -> None:
    result = evaluate(sched(), T12, utc(2026, 5, 4, 12, 59, 59))
    assert result.requests == [] and result.skipped == [] and result.cursor == T12


def test_first_evaluation_does_not_catch_up_the_past() -> None:
    s = sched(catchup="all")
    on_time = evaluate(s, None, NOW)
    assert times_of(on_time.requests) == [T12] and on_time.cursor == T12
    late = evaluate(s, None, utc(2026, 5, 4, 12, 30))
    assert late.requests == [] and late.skipped == []
    assert late.cursor == utc(2026, 5, 4, 12, 29)  # now - grace: the window considered
    then = evaluate(s, late.cursor, utc(2026, 5, 4, 13, 0, 10))
    assert times_of(then.requests) == [utc(2026, 5, 4, 13)]


def test_a_daemon_loop_requests_each_tick_once() -> None:
    s, cursor, seen = sched("*/15 * * * *"), None, []
    now = utc(2026, 5, 4, 10, 0, 5)
    while now < utc(2026, 5, 4, 12):
        result = evaluate(s, cursor, now)
        seen += [r.run_key for r in result.requests]
        cursor, now = result.cursor, now + timedelta(seconds=20)
    assert len(seen) == len(set(seen)) == 8


# --- run keys ----------------------------------------------------------------------------------


def test_run_key_and_params_carry_the_scheduled_time() -> None:
    s = sched(params={"lr": 0.1})
    (request,) = evaluate(s, CURSOR, utc(2026, 5, 4, 10, 0, 42)).requests
    assert request.run_key == "nightly@2026-05-04T10:00:00+00:00"
    assert request.run_key == run_key(s, T10.astimezone(NY))
    assert request.params == {"lr": 0.1, SCHEDULED_TIME_PARAM: "2026-05-04T10:00:00+00:00"}
    assert request.pipeline == "train" and request.schedule == "nightly"
    assert not request.queued


def test_run_keys_are_unique_and_deterministic() -> None:
    s = sched(catchup="all")
    first = evaluate(s, CURSOR, NOW)
    again = evaluate(s, CURSOR, utc(2026, 5, 4, 12, 0, 50))
    keys = [r.run_key for r in first.requests]
    assert keys == [r.run_key for r in again.requests]
    assert len(set(keys)) == 3
    assert run_key(s, T10) == run_key(dataclasses.replace(s, params={"x": 1}), T10)


# --- concurrency and pause ---------------------------------------------------------------------


def test_concurrency_skip_while_running() -> None:
    result = evaluate(sched(concurrency="skip"), CURSOR, NOW, running=True)
    assert result.requests == []
    assert Skip(T12, "previous run still running") in result.skipped
    assert result.cursor == T12


def test_concurrency_queue_while_running() -> None:
    result = evaluate(sched(concurrency="queue"), CURSOR, NOW, running=True)
    assert [(r.scheduled_time, r.queued) for r in result.requests] == [(T12, True)]


def test_concurrency_allow_while_running() -> None:
    result = evaluate(sched(concurrency="allow", catchup="all"), CURSOR, NOW, running=True)
    assert [(r.scheduled_time, r.queued) for r in result.requests] == [
        (T10, False),
        (T11, False),
        (T12, False),
    ]


def test_concurrency_applies_only_while_running() -> None:
    result = evaluate(sched(concurrency="skip"), CURSOR, NOW, running=False)
    assert times_of(result.requests) == [T12]


def test_paused_requests_nothing_but_advances_the_cursor() -> None:
    result = evaluate(sched(catchup="all", paused=True), CURSOR, NOW)
    assert result.requests == []
    assert result.skipped == [Skip(T10, "paused"), Skip(T11, "paused"), Skip(T12, "paused")]
    assert result.cursor == T12
    resumed = evaluate(sched(catchup="all"), result.cursor, utc(2026, 5, 4, 13, 0, 1))
    assert times_of(resumed.requests) == [utc(2026, 5, 4, 13)]  # no replay of 10..12


# --- validation --------------------------------------------------------------------------------


def test_malformed_cron_names_schedule_expression_and_reason() -> None:
    with pytest.raises(ScheduleError) as err:
        sched("61 * * * *")
    assert str(err.value) == (
        "schedule 'nightly': invalid cron expression '61 * * * *': "
        "[61 * * * *] is not acceptable, out of range"
    )


def test_cron_with_the_wrong_number_of_fields() -> None:
    with pytest.raises(ScheduleError, match=r"'\* \* \*': expected 5 fields .* got 3"):
        sched("* * *")


def test_cron_that_never_fires_is_rejected() -> None:
    with pytest.raises(ScheduleError, match="invalid cron expression '0 0 30 2 \\*'"):
        sched("0 0 30 2 *")


def test_unknown_time_zone_suggests_the_closest() -> None:
    with pytest.raises(ScheduleError) as err:
        sched(timezone="Europe/Berln")
    assert str(err.value).startswith(
        "schedule 'nightly': unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)"
    )


@pytest.mark.parametrize(
    ("field", "value", "choices"),
    [
        ("catchup", "sometimes", "'all', 'latest', 'skip'"),
        ("concurrency", "parallel", "'allow', 'queue', 'skip'"),
    ],
)
def test_bad_policy_lists_the_choices(field: str, value: str, choices: str) -> None:
    with pytest.raises(ScheduleError) as err:
        sched(**{field: value})
    assert str(err.value) == (
        f"schedule 'nightly': unknown {field} policy '{value}'; expected one of {choices}"
    )


def test_bad_max_catchup_and_reserved_param() -> None:
    with pytest.raises(ScheduleError, match="max_catchup must be >= 1, got 0"):
        sched(max_catchup=0)
    with pytest.raises(ScheduleError, match="param 'scheduled_time' is reserved"):
        sched(params={"scheduled_time": "x"})


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ScheduleError, match="now must be a timezone-aware datetime"):
        evaluate(sched(), None, datetime(2026, 5, 4, 12))


# --- scale -------------------------------------------------------------------------------------


def test_a_thousand_schedules_for_one_tick() -> None:
    crons = ["*/15 * * * *", "0 * * * *", "30 2 * * *", "* * * * *"]
    zones = ["UTC", "Europe/Berlin", "America/New_York"]
    schedules = [
        sched(crons[i % 4], name=f"s{i}", timezone=zones[i % 3], catchup="all") for i in range(1000)
    ]
    now = utc(2026, 5, 4, 12, 0, 10)
    results = [evaluate(s, now - timedelta(minutes=1), now) for s in schedules]
    keys = [r.run_key for result in results for r in result.requests]
    assert len(keys) == len(set(keys)) == 750  # every schedule but the daily ones fires at 12:00
