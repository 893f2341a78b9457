"""One contract, every database: the metadata store and the model registry on SQLite and
on a real PostgreSQL server behave the same.

Each test runs twice through the `store_url` fixture: `sqlite` (a file under tmp_path)
and `postgresql` (a fresh database per test, see `pg_url` in tests/conftest.py). Rows are
written in the shapes the engine writes them (see orchestrator/engine.py) and read back
through the public reads (`step_runs`, `get_run`, `list_runs`, `cache_get`, ...).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, inspect, select, text, update

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.errors import NotFound, StoreError
from orchestrator.store import schema as t
from orchestrator.store.db import HEAD, connect, current_revision
from orchestrator.store.metadata import Batch, MetadataStore
from orchestrator.store.registry import StoreRegistry

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
RUN = "a1b2c3d4e5f6"


# -- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orchestrator.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[MetadataStore]:
    s = MetadataStore(store_url)
    yield s
    s.close()


@pytest.fixture
def registry(store: MetadataStore, tmp_path: Path) -> StoreRegistry:
    return StoreRegistry(store, ArtifactStore(tmp_path / "artifacts"))


def is_pg(url: str) -> bool:
    return url.startswith("postgresql")


def new_run(store: MetadataStore, run_id: str = RUN, pipeline: str = "demo", **kw: Any) -> None:
    store.create_run(run_id, pipeline, f"pipe.py:{pipeline}", {"n": 5}, "thread", **kw)


def set_run(store: MetadataStore, run_id: str, **values: Any) -> None:
    with store.tx() as conn:
        conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(**values))


def out(h: str, size: int = 12) -> dict[str, Any]:
    return {"hash": h, "serializer": "json", "type": "builtins:int", "size": size}


def artifact(h: str, run_id: str = RUN, step: str = "load", size: int = 12) -> dict[str, Any]:
    return {
        "hash": h,
        "serializer": "json",
        "type": "builtins:int",
        "size": size,
        "run_id": run_id,
        "step": step,
        "created_at": T0,
        "inline": None,  # a file, not a value kept in the store
    }


def entry(
    key: str,
    outputs: list[dict[str, Any]],
    step: str = "load",
    created_at: dt.datetime = T0,
    run_id: str = RUN,
) -> dict[str, Any]:
    return {
        "cache_key": key,
        "pipeline": "demo",
        "step": step,
        "outputs": outputs,
        "code": {"fn": f"code-of-{step}"},
        "params": {"n": 5},
        "inputs": {},
        "run_id": run_id,
        "created_at": created_at,
    }


def step_row(name: str, state: str, run_id: str = RUN, **kw: Any) -> dict[str, Any]:
    return {"run_id": run_id, "name": name, "kind": "custom", "state": state, **kw}


def by_name(store: MetadataStore, run_id: str = RUN) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in store.step_runs(run_id)}


def assert_utc(value: dt.datetime | None) -> None:
    assert isinstance(value, dt.datetime), value
    assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0), value


def as_json(value: Any) -> str:
    """Exact JSON text: tells 1 from 1.0 and True from 1, unlike ==."""
    return json.dumps(value, sort_keys=True)


# -- migrations ---------------------------------------------------------------------------


def test_fresh_database_is_migrated_to_the_schema_at_head(store_url: str) -> None:
    store = MetadataStore(store_url)
    try:
        assert current_revision(store.engine) == HEAD
        insp = inspect(store.engine)
        assert set(insp.get_table_names()) == set(t.metadata.tables) | {"alembic_version"}
        for name, table in t.metadata.tables.items():
            got = {c["name"] for c in insp.get_columns(name)}
            assert got == {c.name for c in table.columns}, name
        assert insp.get_pk_constraint("claims")["constrained_columns"] == ["kind", "key"]
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [(HEAD,)]
    finally:
        store.close()


def test_second_store_on_a_current_database_runs_no_migration(store_url: str) -> None:
    first = MetadataStore(store_url)
    new_run(first)
    first.close()

    engine = connect(store_url)
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    second = MetadataStore(store_url, engine=engine)
    try:
        # the migration check is one cheap query; nothing is created, altered or written
        assert [s for s in seen if "alembic" in s] == ["SELECT version_num FROM alembic_version"]
        verbs = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE", "LOCK", "pg_advisory")
        assert not [s for s in seen if any(v in s for v in verbs)], seen
        assert second.get_run(RUN)["pipeline"] == "demo"  # the data is still there
        with second.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        second.close()


def test_first_opens_racing_on_a_fresh_database_all_succeed(store_url: str) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            barrier.wait(timeout=60)
            MetadataStore(store_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    engine = create_engine(store_url)
    try:
        assert current_revision(engine) == HEAD
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        engine.dispose()


# -- runs and step runs -------------------------------------------------------------------


@pytest.mark.parametrize("fast", [False, True], ids=["portable", "fast"])
def test_batches_round_trip_through_step_runs(store: MetadataStore, fast: bool) -> None:
    new_run(store)
    started = {
        "attempts": 1,
        "started_at": T0,
        "cache_key": "k-load",
        "reason": {"cache": "miss", "summary": "no cache entry for this step yet"},
        "inputs": {},
        "params": {"n": 5},
    }
    store.write(
        Batch(
            step_inserts=[
                step_row("load", "running", kind="ingest", **started),
                step_row(
                    "double",
                    "cached",
                    kind="feature",
                    attempts=0,
                    started_at=T0,
                    ended_at=T0,
                    duration=0.0,
                    cache_key="k-double",
                    reason={"cache": "hit", "from_run": "r0"},
                    params={"k": 2},
                    inputs={"xs": "h-load"},
                    outputs=[out("h-double")],
                ),
                # a skipped row has no attempts: it defaults to 0
                step_row("count", "skipped", reason={"cache": "skipped"}, error="skipped: x"),
            ]
        ),
        fast=fast,
    )
    assert by_name(store)["load"]["state"] == "running"

    ended = T0 + dt.timedelta(seconds=2)
    store.write(
        Batch(
            step_updates=[
                {
                    "run_id": RUN,
                    "name": "load",
                    "state": "succeeded",
                    "attempts": 1,
                    "ended_at": ended,
                    "duration": 2.0,
                    "cache_key": "k-load",
                    "reason": started["reason"],
                    "outputs": [out("h-load")],
                    "error": None,
                    "log": "loaded 5 rows\n",
                    "inputs": {},
                }
            ],
            artifacts={"h-load": artifact("h-load")},
            cache_entries=[entry("k-load", [out("h-load")])],
        ),
        fast=fast,
    )

    rows = store.step_runs(RUN)
    assert [r["name"] for r in rows] == ["load", "double", "count"]  # insertion order
    load, double, count = rows
    assert load["state"] == "succeeded" and load["kind"] == "ingest"
    assert load["attempts"] == 1 and load["duration"] == 2.0
    assert load["started_at"] == T0 and load["ended_at"] == ended
    assert load["outputs"] == [out("h-load")] and load["log"] == "loaded 5 rows\n"
    assert load["params"] == {"n": 5}  # not an update column: kept from the insert
    assert double["state"] == "cached" and double["outputs"] == [out("h-double")]
    assert double["inputs"] == {"xs": "h-load"} and double["reason"]["from_run"] == "r0"
    assert count["state"] == "skipped" and count["attempts"] == 0
    assert count["started_at"] is None and count["error"] == "skipped: x"

    assert store.artifact_rows(["h-load", "nope"]) == {"h-load": artifact("h-load")}
    assert store.cache_get("k-load", fast=fast) == {
        "cache_key": "k-load",
        "outputs": [out("h-load")],
        "run_id": RUN,
    }
    run = store.get_run(RUN)
    assert run["status"] == "running" and run["params"] == {"n": 5}
    assert run["trigger"] == {"kind": "manual"} and run["executor"] == "thread"
    assert run["host"] == socket.gethostname() and run["pid"] == os.getpid()
    [listed] = store.list_runs()
    assert listed["counts"] == {"succeeded": 1, "cached": 1, "skipped": 1}


def test_hot_path_is_raw_sqlite_or_pipelined_psycopg(store: MetadataStore, store_url: str) -> None:
    expected = "PostgresFastPath" if is_pg(store_url) else "SqliteFastPath"
    assert type(store.fast()).__name__ == expected
    assert store.fast() is store.fast()  # one per store, reused for the engine's run


def test_get_run_finds_a_run_by_unique_id_prefix(store: MetadataStore) -> None:
    new_run(store, RUN)
    assert store.get_run("a1b2")["id"] == RUN
    new_run(store, "a1b2ffffffff")
    with pytest.raises(NotFound, match="ambiguous"):
        store.get_run("a1b2")
    assert store.get_run("a1b2c")["id"] == RUN
    assert store.get_run(RUN)["id"] == RUN
    # LIKE wildcards in the prefix are literal characters
    for prefix in ("zz", "a1b_", "a1b%", "%"):
        with pytest.raises(NotFound, match="no run"):
            store.get_run(prefix)


def test_list_runs_newest_first_with_filters_and_step_counts(store: MetadataStore) -> None:
    for i, (rid, pipe) in enumerate([("r1", "demo"), ("r2", "other"), ("r3", "demo")]):
        new_run(store, rid, pipe)
        set_run(store, rid, started_at=T0 + dt.timedelta(minutes=i))
    store.write(
        Batch(
            step_inserts=[
                step_row("a", "succeeded", "r1"),
                step_row("b", "succeeded", "r1"),
                step_row("c", "failed", "r1"),
                step_row("a", "cached", "r3"),
            ]
        )
    )
    store.finish_run("r1", "failed", "step 'c' failed")
    store.finish_run("r2", "succeeded")

    runs = store.list_runs()
    assert [r["id"] for r in runs] == ["r3", "r2", "r1"]
    assert [r["counts"] for r in runs] == [{"cached": 1}, {}, {"succeeded": 2, "failed": 1}]
    assert [r["id"] for r in store.list_runs(limit=2)] == ["r3", "r2"]
    assert [r["id"] for r in store.list_runs(pipeline="demo")] == ["r3", "r1"]
    [failed] = store.list_runs(status="failed")
    assert failed["id"] == "r1" and failed["error"] == "step 'c' failed"
    assert store.list_runs(pipeline="demo", status="succeeded") == []


def test_running_run_of_a_dead_process_reads_as_interrupted(store: MetadataStore) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    new_run(store, "dead")
    new_run(store, "live")
    new_run(store, "elsewhere")
    set_run(store, "dead", pid=proc.pid)
    set_run(store, "elsewhere", pid=proc.pid, host="another-host")
    store.write(Batch(step_inserts=[step_row("s", "running", "dead")]))

    status = {r["id"]: r["status"] for r in store.list_runs()}
    assert status == {"dead": "interrupted", "live": "running", "elsewhere": "running"}
    dead = store.get_run("dead")  # recorded, not only reported
    assert dead["status"] == "interrupted" and dead["error"] == "the runner process died"
    assert by_name(store, "dead")["s"]["state"] == "interrupted"


@pytest.mark.parametrize("status", ["failed", "interrupted"])
def test_finish_run_marks_running_steps_interrupted(store: MetadataStore, status: str) -> None:
    new_run(store)
    store.write(
        Batch(
            step_inserts=[
                step_row("a", "succeeded", ended_at=T0),
                step_row("b", "running", started_at=T0),
                step_row("c", "running", started_at=T0),
            ]
        )
    )
    store.finish_run(RUN, status, "boom")
    run = store.get_run(RUN)
    assert run["status"] == status and run["error"] == "boom"
    assert_utc(run["ended_at"])
    assert run["ended_at"] >= run["started_at"]
    steps = by_name(store)
    assert {n: s["state"] for n, s in steps.items()} == {
        "a": "succeeded",
        "b": "interrupted",
        "c": "interrupted",
    }
    assert steps["a"]["ended_at"] == T0
    assert_utc(steps["b"]["ended_at"])


def attempt_row(step: str, n: int, state: str, **kw: Any) -> dict[str, Any]:
    return {"run_id": RUN, "step": step, "attempt": n, "state": state, **kw}


@pytest.mark.parametrize("fast", [False, True], ids=["portable", "fast"])
def test_attempts_round_trip_and_each_keeps_its_own_error(store: MetadataStore, fast: bool) -> None:
    new_run(store)
    store.write(
        Batch(
            step_inserts=[step_row("s", "running", started_at=T0, attempts=1)],
            attempt_inserts=[attempt_row("s", 1, "running", started_at=T0)],
        ),
        fast=fast,
    )
    store.write(
        Batch(
            attempt_updates=[
                attempt_row(
                    "s",
                    1,
                    "failed",
                    ended_at=T0,
                    duration=0.5,
                    error="boom 1",
                    traceback="Traceback: one",
                    log="line 1\n",
                )  # fmt: skip
            ],
            attempt_inserts=[attempt_row("s", 2, "running", started_at=T0)],
        ),
        fast=fast,
    )
    store.write(
        Batch(
            attempt_updates=[
                attempt_row("s", 2, "failed", ended_at=T0, duration=0.25, error="boom 2")
            ]
        ),
        fast=fast,
    )
    got = store.attempts(RUN)
    assert [(a["step"], a["attempt"], a["state"], a["error"]) for a in got] == [
        ("s", 1, "failed", "boom 1"),
        ("s", 2, "failed", "boom 2"),
    ]
    assert got[0]["traceback"] == "Traceback: one" and got[0]["log"] == "line 1\n"
    assert got[1]["traceback"] is None and got[1]["duration"] == 0.25
    assert_utc(got[0]["started_at"])
    assert got[0]["ended_at"] == T0
    assert store.attempts(RUN, "other") == []


def test_finish_run_marks_running_attempts_interrupted(store: MetadataStore) -> None:
    new_run(store)
    store.write(
        Batch(
            step_inserts=[step_row("s", "running", started_at=T0, attempts=2)],
            attempt_inserts=[
                attempt_row("s", 1, "failed", started_at=T0, error="boom"),
                attempt_row("s", 2, "running", started_at=T0),
            ],
        )
    )
    store.finish_run(RUN, "cancelled")
    assert [a["state"] for a in store.attempts(RUN)] == ["failed", "interrupted"]
    assert store.get_run(RUN)["status"] == "cancelled"
    assert by_name(store)["s"]["state"] == "interrupted"


def test_a_cancel_request_is_recorded_for_a_running_run_only(store: MetadataStore) -> None:
    new_run(store)
    assert store.cancel_requested(RUN) is False
    assert store.request_cancel(RUN) is True
    first = store.get_run(RUN)["cancel_requested_at"]
    assert_utc(first)
    assert store.request_cancel(RUN) is True  # asked twice: the first stamp stays
    assert store.get_run(RUN)["cancel_requested_at"] == first
    assert store.cancel_requested(RUN) is True
    store.finish_run(RUN, "cancelled")
    assert store.request_cancel(RUN) is False
    assert store.request_cancel("nope") is False


def test_finish_run_succeeded_leaves_step_rows_alone(store: MetadataStore) -> None:
    new_run(store)
    store.write(Batch(step_inserts=[step_row("a", "succeeded"), step_row("b", "running")]))
    store.finish_run(RUN, "succeeded")
    assert store.get_run(RUN)["status"] == "succeeded"
    assert {n: s["state"] for n, s in by_name(store).items()} == {
        "a": "succeeded",
        "b": "running",
    }


def test_create_run_records_the_pipeline_and_updates_its_ref(store: MetadataStore) -> None:
    new_run(store, "r1", resumed_from=None, trigger={"kind": "schedule", "tick": "daily@1"})
    store.create_run("r2", "demo", "other.py:demo", {}, "process", resumed_from="r1")
    with store.engine.connect() as conn:
        assert conn.execute(select(t.pipelines.c.name, t.pipelines.c.ref)).all() == [
            ("demo", "other.py:demo")
        ]
    assert store.get_run("r1")["trigger"] == {"kind": "schedule", "tick": "daily@1"}
    r2 = store.get_run("r2")
    assert r2["resumed_from"] == "r1" and r2["executor"] == "process" and r2["params"] == {}


# -- cache index --------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [False, True], ids=["portable", "fast"])
def test_cache_get_and_history(store: MetadataStore, fast: bool) -> None:
    new_run(store)
    sec = dt.timedelta(seconds=1)
    store.write(
        Batch(
            cache_entries=[
                entry("k2", [out("h2")], "train", T0 + 2 * sec),
                entry("k0", [out("h0")], "train", T0),
                entry("k1", [out("h1")], "train", T0 + sec),
                entry("kx", [out("hx")], "other", T0 + 3 * sec),
            ]
        ),
        fast=fast,
    )
    assert store.cache_get("missing", fast=fast) is None
    assert store.cache_get("k1", fast=fast) == {
        "cache_key": "k1",
        "outputs": [out("h1")],
        "run_id": RUN,
    }
    # the most recent entries, oldest first
    assert [e["cache_key"] for e in store.cache_history("demo", "train", fast=fast)] == [
        "k0",
        "k1",
        "k2",
    ]
    recent = store.cache_history("demo", "train", limit=2, fast=fast)
    assert [e["cache_key"] for e in recent] == ["k1", "k2"]
    assert recent[0]["code"] == {"fn": "code-of-train"} and recent[0]["params"] == {"n": 5}
    assert recent[0]["inputs"] == {} and recent[0]["run_id"] == RUN
    if not fast:
        full = store.cache_history("demo", "train")
        assert [e["created_at"] for e in full] == [T0, T0 + sec, T0 + 2 * sec]
        assert full[0]["outputs"] == [out("h0")] and full[0]["pipeline"] == "demo"
    assert store.cache_history("demo", "nope", fast=fast) == []


@pytest.mark.parametrize("fast", [False, True], ids=["portable", "fast"])
def test_cache_probe_is_the_entry_or_else_the_history(store: MetadataStore, fast: bool) -> None:
    new_run(store)
    sec = dt.timedelta(seconds=1)
    store.write(
        Batch(
            cache_entries=[
                entry("k1", [out("h1")], "train", T0 + sec),
                entry("k0", [out("h0")], "train", T0),
                entry("kx", [out("hx")], "other", T0 + 3 * sec),
            ]
        ),
        fast=fast,
    )
    hit = {"cache_key": "k1", "outputs": [out("h1")], "run_id": RUN}
    assert store.cache_probe("k1", "demo", "train", fast=fast) == (hit, None)
    assert store.cache_probe("kx", "demo", "train", fast=fast)[0]["cache_key"] == "kx"
    entry_, history = store.cache_probe("new", "demo", "train", fast=fast)
    assert entry_ is None and history is not None
    assert [e["cache_key"] for e in history] == ["k0", "k1"]  # oldest first
    assert history[0]["code"] == {"fn": "code-of-train"} and history[0]["params"] == {"n": 5}
    assert history[0]["inputs"] == {} and history[0]["run_id"] == RUN
    assert store.cache_probe("new", "demo", "train", 1, fast=fast)[1] == history[1:]
    assert store.cache_probe("new", "demo", "nope", fast=fast) == (None, [])


@pytest.mark.parametrize("fast", [False, True], ids=["portable", "fast"])
def test_many_keys_and_histories_are_read_at_once(store: MetadataStore, fast: bool) -> None:
    new_run(store)
    sec = dt.timedelta(seconds=1)
    children = [entry(f"c{i}", [out(f"h{i}")], f"train[{i}]", T0 + i * sec) for i in range(600)]
    store.write(
        Batch(
            cache_entries=[
                *children,  # more than one statement's worth of keys
                entry("k0", [out("h0")], "train", T0),
                entry("k1", [out("h1")], "train", T0 + sec),
                entry("k2", [out("h2")], "train", T0 + 2 * sec),
            ]
        ),
        fast=fast,
    )
    keys = [f"c{i}" for i in range(600)] + ["k1", "nope"]
    got = store.cache_get_many(keys, fast=fast)
    assert sorted(got) == sorted(keys[:-1])
    assert got["c599"] == {"cache_key": "c599", "outputs": [out("h599")], "run_id": RUN}
    assert got["k1"] == store.cache_get("k1", fast=fast)
    assert store.cache_get_many([], fast=fast) == {}
    steps = ["train", "missing", *(f"train[{i}]" for i in range(600))]
    histories = store.cache_histories("demo", steps, limit=2, fast=fast)
    assert "missing" not in histories and len(histories) == 601
    # each step's newest entries, oldest first, as `cache_history` returns them
    for name in ("train", "train[7]"):
        assert histories[name] == store.cache_history("demo", name, limit=2, fast=fast)
    assert [h["cache_key"] for h in histories["train"]] == ["k1", "k2"]
    assert store.cache_histories("other-pipeline", ["train"], fast=fast) == {}


def test_cache_prefetch_is_each_steps_newest_entry(store: MetadataStore) -> None:
    new_run(store)
    sec = dt.timedelta(seconds=1)
    store.write(
        Batch(
            cache_entries=[
                entry("k0", [out("h0")], "train", T0),
                entry("k1", [out("h1")], "train", T0 + sec),
                entry("kl", [out("hl")], "load", T0),
                entry("kx", [out("hx")], "other", T0),
            ]
        )
    )
    got = store.cache_prefetch("demo", ["train", "load", "missing"])
    newest = {
        "k1": {"cache_key": "k1", "outputs": [out("h1")], "run_id": RUN},
        "kl": {"cache_key": "kl", "outputs": [out("hl")], "run_id": RUN},
    }
    assert got == newest
    assert store.cache_prefetch("demo", ["train", "load", "missing"], eager=True) == newest
    assert store.cache_prefetch("other-pipeline", ["train"]) == {}
    assert store.cache_prefetch("other-pipeline", ["train"], eager=True) == {}


def test_a_step_the_prefetch_found_without_entries_misses_unread_for_a_while(
    store: MetadataStore, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the window after a prefetch, a step it found with no entry misses with no
    read (another store's new entry is not seen yet); an entry written through this
    store is seen at once; past the window, a lookup reads again."""
    from orchestrator.store import absent, pgpath

    monkeypatch.setattr(absent, "WINDOW", 60.0)
    monkeypatch.setattr(pgpath, "ABSENT_FOR", 60.0)
    new_run(store)
    other = MetadataStore(store_url)
    try:
        assert store.cache_prefetch("demo", ["a", "b", "c"]) == {}
        other.write(Batch(cache_entries=[entry("ka", [out("ha")], "a", T0)]), fast=True)
        assert store.cache_probe("ka", "demo", "a", fast=True) == (None, [])  # unread
        store.write(Batch(cache_entries=[entry("kb", [out("hb")], "b", T0)]), fast=True)
        hit = {"cache_key": "kb", "outputs": [out("hb")], "run_id": RUN}
        assert store.cache_probe("kb", "demo", "b", fast=True) == (hit, None)  # its own
        monkeypatch.setattr(absent, "WINDOW", 0.0)
        monkeypatch.setattr(pgpath, "ABSENT_FOR", 0.0)
        assert store.cache_prefetch("demo", ["a", "c"]) != {}  # a fresh answer, at once old
        other.write(Batch(cache_entries=[entry("kc", [out("hc")], "c", T0)]), fast=True)
        found = {"cache_key": "kc", "outputs": [out("hc")], "run_id": RUN}
        assert store.cache_probe("kc", "demo", "c", fast=True) == (found, None)  # read again
    finally:
        other.close()


@pytest.mark.parametrize("fast", [False, True], ids=["portable", "fast"])
def test_duplicate_artifacts_and_cache_entries_are_ignored(
    store: MetadataStore, fast: bool
) -> None:
    new_run(store)
    store.write(
        Batch(artifacts={"h": artifact("h", size=10)}, cache_entries=[entry("k", [out("a")])]),
        fast=fast,
    )
    # again, with other values, and twice within one batch: the first write wins
    store.write(
        Batch(
            artifacts={"h": artifact("h", size=99), "h2": artifact("h2")},
            cache_entries=[entry("k", [out("b")]), entry("k", [out("c")]), entry("k2", [])],
        ),
        fast=fast,
    )
    rows = store.artifact_rows(["h", "h2"])
    assert rows["h"]["size"] == 10 and set(rows) == {"h", "h2"}
    got = store.cache_get("k")
    assert got is not None and got["outputs"] == [out("a")]
    assert store.cache_get("k2") is not None
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.cache_entries)).scalar() == 2


def test_drop_cache_entries(store: MetadataStore) -> None:
    new_run(store)
    store.write(Batch(cache_entries=[entry("k1", [out("h1")]), entry("k2", [out("h2")])]))
    store.drop_cache_entries(["k1", "not-there"])
    store.drop_cache_entries([])
    assert store.cache_get("k1") is None
    assert store.cache_get("k2") is not None


def test_artifact_rows_reads_more_hashes_than_one_query_chunk(store: MetadataStore) -> None:
    new_run(store)
    hashes = [f"{i:032x}" for i in range(1200)]
    store.write(Batch(artifacts={h: artifact(h, size=i) for i, h in enumerate(hashes)}))
    rows = store.artifact_rows([*hashes, *hashes[:10], "missing"])
    assert set(rows) == set(hashes)
    assert rows[hashes[1100]]["size"] == 1100


def test_referenced_artifacts_and_prune_cache(
    store: MetadataStore, registry: StoreRegistry
) -> None:
    new_run(store, "old")
    new_run(store, "new")
    set_run(store, "old", started_at=T0)
    set_run(store, "new", started_at=T0 + dt.timedelta(hours=1))
    store.write(
        Batch(
            step_inserts=[
                step_row("a", "succeeded", "old", outputs=[out("h1")]),
                step_row("a", "cached", "new", outputs=[out("h2")]),
                step_row("b", "failed", "new"),  # no outputs
            ],
            artifacts={h: artifact(h) for h in ("h1", "h2", "h3", "h4", "h5")},
            cache_entries=[
                entry("k1", [out("h1")]),
                entry("k2", [out("h2")]),
                entry("k3", [out("h2"), out("h4")]),
                entry("k4", []),
            ],
        )
    )
    registry.register(
        "m", artifact_hash="h3", metrics={}, run_id="new", step="b", params={}, data_hash=None
    )
    assert store.referenced_artifacts() == {"h1", "h2", "h3"}
    keep = store.referenced_artifacts(keep_runs=1)
    assert keep == {"h2", "h3"}

    assert store.prune_cache(keep) == 2  # k1 (h1) and k3 (h4) go; k2 and k4 stay
    assert store.cache_get("k1") is None and store.cache_get("k3") is None
    assert store.cache_get("k2") is not None and store.cache_get("k4") is not None
    assert set(store.artifact_rows(["h1", "h2", "h3", "h4", "h5"])) == {"h2", "h3"}

    assert store.prune_cache(set()) == 1  # k2; an entry with no outputs is never stale
    assert store.artifact_rows(["h2", "h3"]) == {}


def test_inline_artifacts_are_listed_with_their_age_and_pruned_like_files(
    store: MetadataStore,
) -> None:
    new_run(store)
    later = T0 + dt.timedelta(hours=1)
    small = artifact("i1") | {"inline": "[1, 2]"}
    young = artifact("i2") | {"inline": "3", "created_at": later}
    store.write(
        Batch(
            artifacts={"i1": small, "i2": young, "f1": artifact("f1")},
            cache_entries=[
                entry("k-i1", [out("i1") | {"inline": "[1, 2]"}]),
                entry("k-i2", [out("i2") | {"inline": "3"}]),
            ],
        )
    )
    assert store.inline_artifacts() == {"i1": T0.timestamp(), "i2": later.timestamp()}
    assert store.prune_cache({"i2"}) == 1  # the entry naming i1 goes with i1's row
    assert store.cache_get("k-i1") is None and store.cache_get("k-i2") is not None
    assert set(store.inline_artifacts()) == {"i2"}
    assert store.artifact_ref("i2") is not None and store.artifact_ref("i2").data == b"3"


def test_prune_cache_with_a_keep_set_larger_than_a_statement_can_bind(
    store: MetadataStore,
) -> None:
    # `orch cache gc` passes every referenced hash; a long-lived store holds many more
    # than one statement's bind-parameter limit (65,535 on PostgreSQL)
    new_run(store)
    keep = {f"{i:032x}" for i in range(70_000)}
    store.write(
        Batch(
            artifacts={h: artifact(h) for h in ("00" * 16, "ff" * 16)},
            cache_entries=[entry("k-kept", [out("00" * 16)]), entry("k-gone", [out("ff" * 16)])],
        )
    )
    assert store.prune_cache(keep) == 1
    assert store.cache_get("k-kept") is not None and store.cache_get("k-gone") is None
    assert set(store.artifact_rows(["00" * 16, "ff" * 16])) == {"00" * 16}


# -- claims -------------------------------------------------------------------------------


def test_claim_is_granted_exactly_once(store: MetadataStore) -> None:
    assert store.claim_owner("tick", "daily@1") is None
    assert store.claim("tick", "daily@1", "worker-a") is True
    assert store.claim("tick", "daily@1", "worker-b") is False
    assert store.claim("tick", "daily@1", "worker-a") is False  # not even to its owner
    assert store.claim_owner("tick", "daily@1") == "worker-a"
    # kinds and keys are independent
    assert store.claim("event", "daily@1", "worker-b") is True
    assert store.claim("tick", "daily@2", "worker-b") is True
    assert store.claim_owner("event", "daily@1") == "worker-b"


def test_claim_launch_is_all_or_nothing(store: MetadataStore) -> None:
    args = ["run", "flow.py:job", "--json"]
    assert store.claim("file", "s:b.csv:h2", "other") is True
    # a launch needing a file another daemon took records neither its claims nor itself
    taken = [("file", "s:a.csv:h1"), ("file", "s:b.csv:h2")]
    assert not store.claim_launch(taken, "me", run_id="r1", source="sensor:s", args=args)
    assert store.claim_owner("file", "s:a.csv:h1") is None
    assert store.launches(["pending"]) == []
    assert store.last_launch("sensor:s") is None

    event_id, _ = store.emit_event("go", {"k": 1})
    claims = [("event", f"{event_id}:t")]
    event = {"id": event_id, "reason": "started by trigger 't'"}
    assert store.claim_launch(claims, "me", run_id="r2", source="trigger:t", args=args,
                              event=event)  # fmt: skip
    assert not store.claim_launch(claims, "you", run_id="r3", source="trigger:t", args=args)
    (row,) = store.launches(["pending"])
    assert (row["run_id"], row["owner"], row["args"]) == ("r2", "me", args)
    assert row["key"] == claims[0][1]
    assert_utc(store.last_launch("trigger:t"))
    assert store.launch_busy("trigger:t") and not store.launch_busy("trigger:other")
    (ev,) = [e for e in store.list_events() if e["id"] == event_id]
    assert (ev["status"], ev["run_id"]) == ("started", "r2")

    # compare-and-set: only the daemon that still sees it pending takes it
    assert store.set_launch("r2", "launched", owner="you", expect={"status": "pending"})
    assert not store.set_launch("r2", "launched", owner="me", expect={"status": "pending"})
    assert store.set_launch("r2", "done")
    assert not store.launch_busy("trigger:t")
    new_run(store, "r2")
    assert store.existing_runs(["r2", "nope"]) == {"r2": "running"}


def test_monitor_checks_round_trip(store: MetadataStore) -> None:
    common = {"monitor": "d", "kind": "drift", "model": "m", "version": 1, "rows": 150}
    first = store.record_check(**common, source="log", position=1200, drifted=False, summary="ok")
    second = store.record_check(
        **common, source="log", position=2400, drifted=True, value=0.8, report_hash="ab" * 16,
        summary="drift in 1 of 4 features", event_id=7,
    )  # fmt: skip
    third = store.record_check(**common, source="other", position=99, drifted=False, summary="")
    store.record_check(**(common | {"monitor": "e"}), source="log", drifted=False, summary="")
    assert [c["id"] for c in store.monitor_checks(monitor="d")] == [third, second, first]
    assert len(store.monitor_checks(limit=2)) == 2
    assert store.monitor_position("d", "log") == 2400
    assert store.monitor_position("d", "nothing") == 0
    got = store.monitor_check(second)
    assert got is not None and got["drifted"] is True and got["event_id"] == 7
    assert_utc(got["created_at"])
    assert store.monitor_check(first)["drifted"] is False
    assert store.monitor_check(10_000) is None
    assert "ab" * 16 in store.referenced_artifacts()  # gc keeps reports


def test_claims_racing_in_threads_are_each_granted_once(store_url: str) -> None:
    barrier = threading.Barrier(4)
    won: dict[str, list[int]] = {}

    def race(owner: str) -> None:
        s = MetadataStore(store_url)
        try:
            barrier.wait(timeout=60)
            won[owner] = [i for i in range(50) if s.claim("tick", f"t@{i}", owner)]
        finally:
            s.close()

    threads = [threading.Thread(target=race, args=(f"w{k}",)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert sorted(i for keys in won.values() for i in keys) == list(range(50))
    check = MetadataStore(store_url)
    try:
        for owner, keys in won.items():
            assert all(check.claim_owner("tick", f"t@{i}") == owner for i in keys)
    finally:
        check.close()


def test_a_failed_transaction_writes_nothing(store: MetadataStore) -> None:
    with pytest.raises(RuntimeError), store.tx() as conn:
        conn.execute(t.claims.insert().values(kind="tick", key="k", owner="me", claimed_at=T0))
        raise RuntimeError("abort")
    assert store.claim_owner("tick", "k") is None
    assert store.claim("tick", "k", "you") is True


# -- model registry -----------------------------------------------------------------------


def register(registry: StoreRegistry, name: str = "m", h: str = "h", **kw: Any) -> Any:
    args: dict[str, Any] = {
        "artifact_hash": h,
        "metrics": {"accuracy": 0.9},
        "run_id": RUN,
        "step": "train",
        "params": {"C": 1.0},
        "data_hash": "d",
    }
    return registry.register(name, **(args | kw))


def test_registry_register_promote_versions(registry: StoreRegistry, store: MetadataStore) -> None:
    v1 = register(registry, h="h1", reason="first")
    v2 = register(registry, h="h2")
    v3 = register(registry, h="h3")
    other = register(registry, "other", h="o1")
    assert (v1.version, v2.version, v3.version, other.version) == (1, 2, 3, 1)
    assert {v1.stage, v2.stage, v3.stage} == {"candidate"}
    assert v1.reason == "first" and v1.metrics == {"accuracy": 0.9} and v1.params == {"C": 1.0}
    assert v1.artifact_hash == "h1" and v1.run_id == RUN and v1.step == "train"
    assert registry.production("m") is None

    promoted = registry.promote("m", 1, "beats nothing")
    assert promoted.stage == "production" and promoted.reason == "first"  # kept as registered
    registry.promote("other", 1, "only one")
    registry.promote("m", 3, "better accuracy")
    prod = registry.production("m")
    assert prod is not None and prod.version == 3
    assert [(v.version, v.stage) for v in registry.versions("m")] == [
        (1, "archived"),
        (2, "candidate"),
        (3, "production"),
    ]
    registry.promote("m", 3, "again")  # promoting the champion keeps one champion
    registry.promote("m", 2, "rollback")
    assert [(v.version, v.stage) for v in registry.versions("m")] == [
        (1, "archived"),
        (2, "production"),
        (3, "archived"),
    ]
    # other names are untouched, and all versions list by name then version
    assert registry.production("other") is not None
    assert [(v.name, v.version) for v in registry.versions()] == [
        ("m", 1),
        ("m", 2),
        ("m", 3),
        ("other", 1),
    ]
    with store.engine.connect() as conn:
        assert conn.execute(
            select(t.model_versions.c.name, func.count())
            .where(t.model_versions.c.stage == "production")
            .group_by(t.model_versions.c.name)
            .order_by(t.model_versions.c.name)
        ).all() == [("m", 1), ("other", 1)]
    assert registry.get("m", 1).reason == "first"  # promotions never overwrite it
    with pytest.raises(NotFound):
        registry.get("m", 9)
    with pytest.raises(NotFound):
        registry.promote("m", 9, "no such version")
    assert registry.production("none") is None and registry.versions("none") == []


def test_registry_loads_a_version_through_its_artifact_row(
    registry: StoreRegistry, store: MetadataStore
) -> None:
    new_run(store)
    ref = registry.artifacts.put({"weights": [1, 2, 3]})
    store.write(Batch(artifacts={ref.hash: artifact(ref.hash) | ref.to_json()}))
    version = register(registry, h=ref.hash)
    assert registry.load(version) == {"weights": [1, 2, 3]}
    with pytest.raises(NotFound, match="not in the store"):
        registry.load(register(registry, h="0" * 32))


def test_registrations_racing_for_version_numbers_all_succeed(
    store_url: str, tmp_path: Path
) -> None:
    """Four writers registering the same model at once (a fan-out of deploy steps)."""
    threads, per_thread = 4, 25
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        s = MetadataStore(store_url)
        reg = StoreRegistry(s, ArtifactStore(tmp_path))
        try:
            barrier.wait(timeout=60)
            for j in range(per_thread):
                register(reg, h=f"h{k}-{j}")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            s.close()

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(timeout=300)
    assert errors == [], f"{len(errors)} registrations failed, e.g. {errors[0]!r}"
    s = MetadataStore(store_url)
    try:
        versions = StoreRegistry(s, ArtifactStore(tmp_path)).versions("m")
    finally:
        s.close()
    assert [v.version for v in versions] == list(range(1, threads * per_thread + 1))
    assert len({v.artifact_hash for v in versions}) == threads * per_thread


# -- types: timestamps and JSON -----------------------------------------------------------


def check_timestamps(store: MetadataStore, registry: StoreRegistry) -> None:
    before = dt.datetime.now(dt.UTC)
    new_run(store)
    after = dt.datetime.now(dt.UTC)
    run = store.get_run(RUN)
    assert_utc(run["started_at"])
    # the same instant as the writer's clock said (not shifted by a time zone)
    assert before <= run["started_at"] <= after
    # a live run of this process is not mistaken for a dead one
    assert store.list_runs()[0]["status"] == "running"

    india = dt.timezone(dt.timedelta(hours=5, minutes=30))
    local = T0.astimezone(india)
    store.write(
        Batch(
            step_inserts=[step_row("a", "succeeded", started_at=local, ended_at=T0)],
            artifacts={"h": artifact("h") | {"created_at": local}},
            cache_entries=[entry("k", [out("h")], created_at=local)],
        )
    )
    a = by_name(store)["a"]
    for value in (
        a["started_at"],
        a["ended_at"],
        store.artifact_rows(["h"])["h"]["created_at"],
        store.cache_history("demo", "load")[0]["created_at"],
    ):
        assert_utc(value)
        assert value == T0 and value.microsecond == T0.microsecond
    version = register(registry)
    assert_utc(version.created_at)
    assert before <= version.created_at
    store.finish_run(RUN, "failed")
    assert_utc(store.get_run(RUN)["ended_at"])


def test_timestamps_round_trip_as_aware_utc(store: MetadataStore, registry: StoreRegistry) -> None:
    check_timestamps(store, registry)


@pytest.fixture
def non_utc_server(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The database (PostgreSQL) or the process (SQLite) in a time zone east of UTC."""
    if is_pg(store_url):
        engine = create_engine(store_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            db = conn.execute(text("SELECT current_database()")).scalar()
            conn.execute(text(f"ALTER DATABASE \"{db}\" SET timezone TO 'Asia/Kolkata'"))
        engine.dispose()
        yield
        return
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


def test_timestamps_do_not_depend_on_the_server_time_zone(
    non_utc_server: None, store_url: str, tmp_path: Path
) -> None:
    store = MetadataStore(store_url)
    try:
        with store.engine.connect() as conn:
            if is_pg(store_url):  # the setting is in force for the store's sessions
                assert conn.execute(text("SHOW timezone")).scalar() == "Asia/Kolkata"
        check_timestamps(store, StoreRegistry(store, ArtifactStore(tmp_path / "a")))
    finally:
        store.close()


JSON_VALUE: dict[str, Any] = {
    "text": 'é✓ 中文 "quoted" \\ back\nslash\ttab',
    "nested": {"list": [1, 2.5, None, True, False, "x", [[]]], "empty": {}, "none": None},
    "int": 2**53 + 1,
    "negative": -7,
    "float": 0.1,
    "whole_float": 3.0,
    "tiny": 1e-300,
    "huge": 1.7976931348623157e308,
    "bool": True,
    "zero": 0,
}


def test_json_columns_round_trip(store: MetadataStore, registry: StoreRegistry) -> None:
    v = JSON_VALUE
    store.create_run(RUN, "demo", "pipe.py:demo", v, "thread", trigger={"kind": "event", **v})
    store.write(
        Batch(
            step_inserts=[
                step_row("a", "succeeded", reason=v, params=v, inputs=v, outputs=[v, v]),
                step_row("b", "succeeded", reason=[], params={}, inputs=None, outputs=[]),
            ],
            cache_entries=[entry("k", [v]) | {"code": v, "params": v, "inputs": v}],
        )
    )
    run = store.get_run(RUN)
    assert as_json(run["params"]) == as_json(v)
    assert as_json(run["trigger"]) == as_json({"kind": "event", **v})
    a, b = store.step_runs(RUN)
    for col in ("reason", "params", "inputs"):
        assert as_json(a[col]) == as_json(v), col
    assert as_json(a["outputs"]) == as_json([v, v])
    assert (b["reason"], b["params"], b["inputs"], b["outputs"]) == ([], {}, None, [])
    [e] = store.cache_history("demo", "load")
    for col in ("code", "params", "inputs"):
        assert as_json(e[col]) == as_json(v), col
    got = store.cache_get("k")
    assert got is not None and as_json(got["outputs"]) == as_json([v])

    version = register(registry, metrics={"accuracy": 0.1, "loss": 3.0}, params=v)
    again = registry.get("m", version.version)
    assert as_json(again.metrics) == as_json({"accuracy": 0.1, "loss": 3.0})
    assert as_json(again.params) == as_json(v)


# -- events -------------------------------------------------------------------------------


def test_events_wait_pending_until_handled_and_keys_drop_repeats(store: MetadataStore) -> None:
    first, new = store.emit_event("data", {"b": 2, "a": [1, 2]}, "http", "key-1")
    assert new is True
    assert store.emit_event("data", {"other": 1}, "cli", "key-1") == (first, False)
    second, new = store.emit_event("data", {}, "cli")
    third, _ = store.emit_event("drift", {"x": 1.5})
    assert new is True and first < second < third
    assert [e["id"] for e in store.pending_events()] == [first, second, third]  # oldest first
    assert [e["id"] for e in store.pending_events(limit=2)] == [first, second]
    got = store.pending_events()[0]
    assert (got["name"], got["data"], got["source"]) == ("data", {"a": [1, 2], "b": 2}, "http")
    assert got["idempotency_key"] == "key-1" and got["status"] == "pending"
    assert_utc(got["created_at"])

    store.handle_event(first, "skipped", "no trigger listens to 'data'")
    store.handle_event(second, "started", "started by trigger 't'", run_id="r9")
    assert [e["id"] for e in store.pending_events()] == [third]
    listed = {e["id"]: e for e in store.list_events()}
    assert [e["id"] for e in store.list_events()] == [third, second, first]  # newest first
    assert (listed[first]["status"], listed[first]["run_id"]) == ("skipped", None)
    assert listed[first]["reason"] == "no trigger listens to 'data'"
    assert (listed[second]["status"], listed[second]["run_id"]) == ("started", "r9")
    assert_utc(listed[second]["handled_at"])
    assert len(store.list_events(limit=1)) == 1


def test_events_racing_on_one_idempotency_key_record_one_event(store_url: str) -> None:
    barrier = threading.Barrier(4)
    got: list[tuple[int, bool]] = []

    def race() -> None:
        s = MetadataStore(store_url)
        try:
            barrier.wait(timeout=60)
            got.extend(s.emit_event("go", {"n": i}, "cli", f"k{i}") for i in range(20))
        finally:
            s.close()

    threads = [threading.Thread(target=race) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert len(got) == 80 and sum(new for _, new in got) == 20
    assert len({event_id for event_id, _ in got}) == 20
    check = MetadataStore(store_url)
    try:
        assert len(check.list_events(limit=100)) == 20
    finally:
        check.close()


# -- the facade ---------------------------------------------------------------------------


def test_the_facade_and_its_repositories_answer_alike(store: MetadataStore) -> None:
    """Each kind of record has its repository; the facade's methods are those answers."""
    new_run(store, trigger={"kind": "schedule", "schedule": "hourly"})
    store.write(Batch(artifacts={"h1": artifact("h1")}, cache_entries=[entry("k", [out("h1")])]))
    store.claim("tick", "hourly@1", "me")
    store.emit_event("go", {})
    store.record_check(monitor="m", kind="drift", model="mv", version=1, rows=10, source="log",
                       position=3, drifted=False, summary="")  # fmt: skip
    assert store.get_run(RUN) == store.runs.get(RUN)
    assert store.step_runs(RUN) == store.runs.steps(RUN)
    assert store.cache_get("k") == store.cache.get("k")
    assert store.cache_history("demo", "load") == store.cache.history("demo", "load")
    assert store.artifact_ref("h1") == store.artifact_index.ref("h1")
    assert store.claim_owner("tick", "hourly@1") == store.claims.owner("tick", "hourly@1") == "me"
    assert store.schedule_running("hourly") is store.schedules.running("hourly") is True
    assert store.list_events() == store.events.list()
    assert store.monitor_position("m", "log") == store.checks.position("m", "log") == 3
    assert store.tx is not None and store.readonly is False


# -- schedules ----------------------------------------------------------------------------


def test_schedule_state_cursor_only_moves_forward_and_paused_is_kept(
    store: MetadataStore,
) -> None:
    assert store.schedule_state("daily") == {"cursor": None, "paused": False}
    store.set_schedule_state("daily", paused=True)  # a new schedule, paused first
    assert store.schedule_state("daily") == {"cursor": None, "paused": True}
    store.set_schedule_state("daily", cursor=T0)
    assert store.schedule_state("daily") == {"cursor": T0, "paused": True}
    store.set_schedule_state("daily", cursor=T0 - dt.timedelta(hours=1))  # never back
    assert store.schedule_state("daily")["cursor"] == T0
    later = T0 + dt.timedelta(days=1)
    store.set_schedule_state("daily", cursor=later, paused=False)
    assert store.schedule_state("daily") == {"cursor": later, "paused": False}
    store.set_schedule_state("fresh", cursor=T0)  # a new schedule, a cursor first
    assert store.schedule_state("fresh") == {"cursor": T0, "paused": False}
    assert_utc(store.schedule_state("fresh")["cursor"])


def test_writers_racing_on_a_new_schedule_all_succeed(store_url: str) -> None:
    """Two daemons meeting schedules neither has seen: one upsert each, no key violation,
    and the cursor ends at the later of the two."""
    names = [f"s{i}" for i in range(40)]
    errors: list[BaseException] = []

    def race(offset: int) -> None:
        s = MetadataStore(store_url)
        try:
            for name in names:
                barrier.wait(timeout=60)
                s.set_schedule_state(name, cursor=T0 + dt.timedelta(minutes=offset))
        except BaseException as exc:  # reported below, with the thread's message
            errors.append(exc)
            barrier.abort()
        finally:
            s.close()

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=race, args=(k,)) for k in (1, 2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    check = MetadataStore(store_url)
    try:
        for name in names:
            assert check.schedule_state(name)["cursor"] == T0 + dt.timedelta(minutes=2)
    finally:
        check.close()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_run_of_a_schedule_does_not_count_as_running(store: MetadataStore) -> None:
    new_run(store, "dead", trigger={"kind": "schedule", "schedule": "hourly"})
    set_run(store, "dead", pid=dead_pid())
    assert store.schedule_running("hourly") is False  # the next tick may go
    assert store.get_run("dead")["status"] == "interrupted"
    new_run(store, "live", trigger={"kind": "schedule", "schedule": "hourly"})
    new_run(store, "other", trigger={"kind": "schedule", "schedule": "daily"})
    assert store.schedule_running("hourly") is True
    store.finish_run("live", "succeeded")
    assert store.schedule_running("hourly") is False
    assert store.schedule_running("daily") is True


def test_a_schedule_run_behind_many_other_running_runs_is_seen(store: MetadataStore) -> None:
    new_run(store, "sched", trigger={"kind": "schedule", "schedule": "hourly"})
    for i in range(25):  # newer running runs of other kinds
        new_run(store, f"manual{i:02d}")
    assert store.schedule_running("hourly") is True


# -- read-only stores ---------------------------------------------------------------------


def test_a_store_opened_read_only_reads_and_refuses_every_write(store_url: str) -> None:
    writer = MetadataStore(store_url)
    try:
        new_run(writer, "kept", trigger={"kind": "schedule", "schedule": "hourly"})
        writer.write(Batch(step_inserts=[step_row("s", "succeeded", "kept")]))
        writer.emit_event("go", {"k": 1})
        writer.set_schedule_state("hourly", cursor=T0)
    finally:
        writer.close()
    reader = MetadataStore(store_url, readonly=True)
    try:
        assert reader.readonly is True
        assert [r["id"] for r in reader.list_runs()] == ["kept"]
        assert [s["name"] for s in reader.step_runs("kept")] == ["s"]
        assert [e["name"] for e in reader.list_events()] == ["go"]
        assert reader.schedule_state("hourly")["cursor"] == T0
        assert reader.schedule_running("hourly") is True
        writes = [
            lambda: new_run(reader, "new"),
            lambda: reader.finish_run("kept", "failed"),
            lambda: reader.write(Batch(step_inserts=[step_row("t", "running", "kept")])),
            lambda: reader.write(Batch(cache_entries=[entry("k", [out("h")])]), fast=True),
            lambda: reader.emit_event("go", {}),
            lambda: reader.claim("tick", "hourly@1", "me"),
            lambda: reader.set_schedule_state("hourly", paused=True),
            lambda: reader.record_check(monitor="m", kind="drift", model="mv", version=1),
            lambda: reader.prune_cache(set()),
        ]
        for attempt in writes:
            with pytest.raises(StoreError, match="is read-only \\(opened read-only\\)"):
                attempt()
        assert [r["status"] for r in reader.list_runs()] == ["running"]
        assert reader.claim_owner("tick", "hourly@1") is None
    finally:
        reader.close()


def test_a_read_only_store_reports_a_dead_run_without_recording_it(store_url: str) -> None:
    writer = MetadataStore(store_url)
    try:
        new_run(writer, "dead")
        set_run(writer, "dead", pid=dead_pid())
    finally:
        writer.close()
    reader = MetadataStore(store_url, readonly=True)
    try:
        assert reader.get_run("dead")["status"] == "interrupted"
    finally:
        reader.close()
    with MetadataStore(store_url).engine.connect() as conn:  # still as recorded
        assert conn.execute(select(t.runs.c.status)).scalar_one() == "running"


def test_a_read_only_store_refuses_a_database_without_the_schema(store_url: str) -> None:
    if not is_pg(store_url):
        Path(store_url.removeprefix("sqlite:///")).touch()
    with pytest.raises(StoreError, match="no metadata store at .*read-only"):
        MetadataStore(store_url, readonly=True)
