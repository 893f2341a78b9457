"""Events through the CLI: recorded before acknowledged, started once, deduplicated, cooled down."""

from __future__ import annotations

from orchtest import Orch, Project

FLOW = """
from orchestrator import pipeline, step
from orchestrator.triggers.events import EventTrigger

@step
def retrain(rows: int = 0) -> int:
    return rows * 2

@pipeline
def job(rows: int = 0):
    retrain(rows=rows)

on_data = EventTrigger(name="on-data", event="new-data", pipeline="job", cooldown={cooldown})
"""


def _setup(project: Project, cooldown: float = 0) -> None:
    project.write("flow.py", FLOW.format(cooldown=cooldown))


def _emit(orch: Orch, *args: str) -> dict:
    res = orch("event", "emit", *args, "--json")
    assert res.code == 0, res.describe()
    return res.json


def _daemon(orch: Orch, now: str = "2026-11-23T10:00:00+00:00") -> None:
    res = orch("daemon", "flow.py", "--once", "--now", now)
    assert res.code == 0, res.describe()


def _events(orch: Orch) -> list[dict]:
    res = orch("events", "--json")
    assert res.code == 0, res.describe()
    return sorted(res.json["events"], key=lambda e: e["id"])


def test_an_event_waits_in_the_store_then_starts_one_run_with_its_data(
    orch: Orch, project: Project
) -> None:
    _setup(project)
    ev = _emit(orch, "new-data", "--data", "rows=21", "--data", "source=s3")
    (pending,) = _events(orch)  # recorded while no daemon runs
    assert pending["status"] == "pending" and pending["data"] == {"rows": 21, "source": "s3"}
    _daemon(orch)
    _daemon(orch)  # handled once only
    (handled,) = _events(orch)
    assert handled["status"] == "started" and handled["run_id"]
    runs = orch.runs()
    assert len(runs) == 1
    assert runs[0]["params"] == {"rows": 21}  # `source` is not a parameter of the pipeline
    assert runs[0]["trigger"] == {
        "kind": "event",
        "event": "new-data",
        "event_id": ev["event_id"],
        "trigger": "on-data",
    }
    shown = orch("show", runs[0]["run_id"]).out
    assert "trigger: event (event new-data" in shown


def test_idempotency_key_drops_duplicates(orch: Orch, project: Project) -> None:
    _setup(project)
    first = _emit(orch, "new-data", "--key", "batch-7", "--data", "rows=1")
    again = _emit(orch, "new-data", "--key", "batch-7", "--data", "rows=1")
    assert again == {"event_id": first["event_id"], "name": "new-data", "duplicate": True}
    assert len(_events(orch)) == 1


def test_cooldown_turns_a_burst_into_one_run(orch: Orch, project: Project) -> None:
    _setup(project, cooldown=3600)
    for i in range(4):
        _emit(orch, "new-data", "--data", f"rows={i}")
    _daemon(orch)
    evs = _events(orch)
    assert [e["status"] for e in evs] == ["started", "dropped", "dropped", "dropped"]
    assert "cooldown: trigger 'on-data' started a run" in evs[1]["reason"]
    assert len(orch.runs()) == 1


def test_unknown_event_names_are_clear_errors(orch: Orch, project: Project) -> None:
    _setup(project)
    res = orch("event", "emit", "new-dta", "--check", "flow.py")
    assert res.code == 2 and "Traceback" not in res.err
    assert "no trigger listens for event 'new-dta' (did you mean 'new-data'?)" in res.err
    _emit(orch, "new-dta")  # without --check it is recorded, and the daemon says why it drops it
    _daemon(orch)
    (ev,) = _events(orch)
    assert ev["status"] == "dropped"
    assert ev["reason"] == "no trigger listens for event 'new-dta' (did you mean 'new-data'?)"
    assert orch.runs() == []


def _emit_many(orch: Orch, names: list[str]) -> None:
    """Record events as `orch event emit` and the HTTP endpoint do, many at once."""
    from orchestrator.store.metadata import MetadataStore

    orch("events")  # creates the store
    store = MetadataStore(f"sqlite:///{orch.db}")
    try:
        for i, name in enumerate(names):
            store.emit_event(name, {"rows": i}, "http")
    finally:
        store.close()


def test_one_pass_drains_more_events_than_one_batch(orch: Orch, project: Project) -> None:
    _setup(project, cooldown=3600)
    _emit_many(orch, ["new-data" if i % 6 else "other" for i in range(250)])
    _daemon(orch)
    res = orch("events", "--json", "--limit", "1000")
    evs = sorted(res.json["events"], key=lambda e: e["id"])
    assert len(evs) == 250
    assert [e["id"] for e in evs if e["status"] == "pending"] == []
    assert [e["status"] for e in evs].count("started") == 1  # the cooldown holds across batches
    other = [e for e in evs if e["name"] == "other"]
    assert len(other) == 42 and all("no trigger listens" in e["reason"] for e in other)
    assert len(orch.runs()) == 1


def test_an_earlier_now_than_the_last_real_start_is_outside_the_cooldown(
    orch: Orch, project: Project
) -> None:
    _setup(project, cooldown=60)
    _emit(orch, "new-data", "--data", "rows=1")
    res = orch("daemon", "flow.py", "--once")  # the real clock
    assert res.code == 0, res.describe()
    _emit(orch, "new-data", "--data", "rows=2")
    _daemon(orch, "2025-11-23T10:00:00+00:00")  # a year before that start
    evs = _events(orch)
    assert [e["status"] for e in evs] == ["started", "started"], evs
    assert len(orch.runs()) == 2


def test_events_table_shows_data_with_brackets_as_written(orch: Orch) -> None:
    _emit(orch, "new-data", "--data", "note=[/x] [bold]b")
    res = orch("events")
    assert res.code == 0 and "Traceback" not in res.err, res.describe()
    assert '"[/x] [bold]b"' in res.out, res.describe()
