"""Two daemons meeting one tick, on a real SQLite store: the loser says what happened.

The interleaving the race produces is set up exactly: daemon B reads the schedule's
cursor, then daemon A evaluates, claims the tick and stores its cursor, then B goes on
with what it read. B must report the tick as taken by A, not as "previous run still
running" (A's run *is* that tick).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from orchestrator import pipeline, step
from orchestrator.store.metadata import MetadataStore
from orchestrator.triggers.daemon import Bound, tick
from orchestrator.triggers.schedules import Schedule


@step
def stamp(scheduled_time: str = "") -> str:
    return scheduled_time


@pipeline
def job(scheduled_time: str = ""):  # type: ignore[no-untyped-def]
    stamp(scheduled_time=scheduled_time)


class ReadsFirst:
    """A store whose `schedule_state` answers what it held before `meanwhile` ran."""

    def __init__(self, store: MetadataStore, meanwhile: Any) -> None:
        self.store, self.meanwhile = store, meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def schedule_state(self, name: str) -> dict[str, Any]:
        state = self.store.schedule_state(name)
        self.meanwhile()
        return state


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = MetadataStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    yield s
    s.close()


@pytest.mark.parametrize("concurrency", ["skip", "queue"])
def test_the_daemon_that_loses_a_tick_says_another_daemon_took_it(
    store: MetadataStore, concurrency: str
) -> None:
    sch = Schedule(name="every15", pipeline="job", cron="*/15 * * * *", concurrency=concurrency)
    bound = [Bound(sch, "flow.py:job", job)]
    now = dt.datetime(2026, 11, 23, 10, 0, 5, tzinfo=dt.UTC)
    won: list[dict[str, Any]] = []

    def daemon_a() -> None:
        won.extend(tick(store, bound, now, "host-a:1"))

    lost = tick(ReadsFirst(store, daemon_a), bound, now, "host-b:2")
    assert [e["action"] for e in won] == ["pending"]
    (entry,) = lost
    assert entry["action"] == "skipped"
    assert entry["reason"] == "claimed by another daemon (host-a:1)", entry
    assert "still running" not in entry["reason"]
