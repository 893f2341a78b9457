"""The event-trigger evaluator (`decide`) with an injected clock, and the event-name rule."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.triggers.events import EventNameError, EventTrigger, check_event_name, decide

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
TRIGGER = EventTrigger(name="on-data", event="new-data", pipeline="job", cooldown=60)
EVENTS = [{"id": 1, "name": "new-data", "data": {"rows": 1}}]


@pytest.mark.parametrize(
    ("offset", "start", "reason"),
    [
        (-30, False, "cooldown: trigger 'on-data' started a run 30s ago (cooldown 60s)"),
        (10, False, "started a run 10s after the time evaluated (cooldown 60s)"),  # clock skew
        (-3600, True, "started by trigger 'on-data'"),
        (365 * 86400, True, "started by trigger 'on-data'"),  # an evaluation a year earlier
    ],
)
def test_cooldown_counts_starts_close_to_now_on_either_side(
    offset: int, start: bool, reason: str
) -> None:
    (d,) = decide(TRIGGER, EVENTS, NOW + dt.timedelta(seconds=offset), NOW)
    assert d.start is start and reason in d.reason


@pytest.mark.parametrize("name", ["new-data", "metric_drop", "drift", "s3:bucket.v2", "A1"])
def test_good_event_names(name: str) -> None:
    assert check_event_name(name) == name


@pytest.mark.parametrize("name", ["", " ", "new data", "-x", "a/b", "é" * 3, "x" * 201])
def test_bad_event_names_say_the_rule(name: str) -> None:
    with pytest.raises(EventNameError, match="an event name is 1 to 200 letters"):
        check_event_name(name)
