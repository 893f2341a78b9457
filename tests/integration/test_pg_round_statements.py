"""The PostgreSQL hot path's batches on a real server: one statement per kind of row (and
one for the metric points of cached rows) and one round trip per round, counted from
libpq's protocol trace (the server's tag of each completed statement); the rows written
are the portable path's, value for value (NULLs, JSON, big integers, floats that are not
finite, non-ASCII text, quotes); a key changed twice in one round is changed in order; a
value that is not JSON is one clear error. Each test runs with rounds sent and not
waited for (the default: store/pgsent.py; their answers read by `settle`) and with a
`synchronous_commit` chosen in the URL (each round waited for, as one statement when it
may be); with rounds sent, no round after a failed one commits, and a read through
another connection of the process sees every round sent.

Each test gets a fresh database (`pg_url`, tests/conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine
from orchestrator.errors import StoreError
from orchestrator.execution.local import make_executor
from orchestrator.store.metadata import Batch, MetadataStore, now
from orchestrator.store.pgtrace import RoundTrips

from .test_store_roundtrips import chain

SOURCE = "r00000source"
ODD = "naïve \"quoted\" 'single' back\\slash 日本語 😀 \t tab\nline"
PARAMS = {"big": 2**62 + 1, "f": 0.1, "tiny": 1e-300, "s": ODD, "none": None,
          "list": [1, "two", None, False], "nested": {"ключ": {"deep": [1.5]}}}  # fmt: skip


@pytest.fixture(params=["sent", "waited"])
def pg(pg_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[MetadataStore, RoundTrips]]:
    chosen = "" if request.param == "sent" else "?options=-csynchronous_commit%3Don"
    store = MetadataStore(pg_url + chosen)
    trips = RoundTrips(store.engine)
    store.create_run(SOURCE, "demo", "pipe.py:demo", {}, "thread")
    points = [metric(SOURCE, "m", v, step="a-cached") for v in (0.25, 0.5)]
    store.write(Batch(rows={"run_metrics": points}))
    yield store, trips
    store.close()
    trips.close()


STAMP = now()


def metric(run_id: str, name: str, value: float, step: str = "a") -> dict[str, Any]:
    return {"run_id": run_id, "step": step, "name": name, "position": None, "value": value,
            "logged_at": STAMP}  # fmt: skip


def starts(run_id: str, stamp: Any) -> Batch:
    """A round's starts: step runs of every shape and their attempts."""
    steps = [
        {"run_id": run_id, "name": "a", "kind": "train", "state": "running", "attempts": 1,
         "started_at": stamp, "cache_key": f"k-{run_id}", "reason": {"summary": ODD},
         "params": PARAMS, "inputs": {"x": "h"}},
        {"run_id": run_id, "name": "b", "kind": "custom", "state": "skipped", "attempts": 0,
         "reason": None, "error": ODD},
        {"run_id": run_id, "name": "a", "kind": "custom", "state": "cached", "attempts": 0,
         "started_at": stamp, "ended_at": stamp, "duration": 0.0, "cache_key": "k-old",
         "reason": {"from_run": SOURCE}, "params": {}, "inputs": {}, "outputs": []},
    ]  # fmt: skip
    steps[2]["name"] = "a-cached"
    attempts = [{"run_id": run_id, "step": "a", "attempt": 1, "state": "running",
                 "started_at": stamp}]  # fmt: skip
    return Batch(step_inserts=steps, attempt_inserts=attempts)


def ends(run_id: str, stamp: Any) -> Batch:
    """A round's ends: a step changed twice (retried, then succeeded), its attempt, an
    artifact, a cache entry and what the step tracked."""
    change = {"run_id": run_id, "name": "a", "state": "running", "attempts": 2,
              "ended_at": None, "duration": None, "cache_key": f"k-{run_id}",
              "reason": None, "outputs": None, "error": "first try failed", "log": None,
              "inputs": {"x": "h"}}  # fmt: skip
    done = change | {"state": "succeeded", "ended_at": stamp, "duration": 1 / 3,
                     "outputs": [{"hash": f"h-{run_id}", "name": "out"}], "error": None,
                     "log": ODD}  # fmt: skip
    attempt = {"run_id": run_id, "step": "a", "attempt": 1, "state": "failed",
               "ended_at": stamp, "duration": 2.5, "error": ODD,
               "traceback": "Traceback\n  'x'", "log": None}  # fmt: skip
    artifact = {"hash": f"h-{run_id}", "serializer": "json", "type": "builtins:int",
                "size": 2**53 + 1, "run_id": run_id, "step": "a", "created_at": stamp,
                "inline": '{"v": "é"}'}  # fmt: skip
    entry = {"cache_key": f"k-{run_id}", "pipeline": "demo", "step": "a",
             "outputs": [{"hash": f"h-{run_id}"}], "code": {"fn": ODD}, "params": PARAMS,
             "inputs": {"x": "h"}, "run_id": run_id, "created_at": stamp}  # fmt: skip
    batch = Batch(step_updates=[change, done], attempt_updates=[attempt],
                  artifacts={artifact["hash"]: artifact}, cache_entries=[entry])  # fmt: skip
    batch.add("run_metrics", [metric(run_id, "loss", v) for v in (0.5, float("nan"), 1e308)])
    batch.add("run_metrics", [metric(run_id, "inf", float("-inf"))])
    batch.add("run_params", [{"run_id": run_id, "step": "a", "name": n, "data": v}
                             for n, v in (("none", None), ("odd", {"ü": ODD}))])  # fmt: skip
    batch.add("run_artifacts", [{"run_id": run_id, "step": "a", "name": "m", "hash": "h"}])
    return batch


TABLES = {  # the columns compared (not the serial ids), in a stable order
    "step_runs": ("name", "kind, state, attempts, started_at, ended_at, duration, cache_key, "
                  "reason, params, inputs, outputs, error, log"),
    "attempts": ("step, attempt", "state, started_at, ended_at, duration, error, traceback, log"),
    "artifacts": ("step", "serializer, type, size, created_at, inline"),
    "cache_entries": ("step", "pipeline, outputs, code, params, inputs, created_at"),
    "run_metrics": ("id", "step, name, position, value, logged_at"),
    "run_params": ("id", "step, name, data"),
    "run_artifacts": ("id", "step, name, hash"),
    "run_metric_summary": ("name", "name, value, points"),
}  # fmt: skip


def rows_as_text(store: MetadataStore, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with store.engine.connect() as conn:
        for table, (order, cols) in TABLES.items():
            picked = ", ".join(f"({c})::text" for c in cols.split(", "))
            sql = f"SELECT {picked} FROM {table} WHERE run_id = :r ORDER BY {order}"
            out[table] = [
                tuple(v.replace(run_id, "RUN") if v else v for v in row)
                for row in conn.execute(text(sql), {"r": run_id})
            ]
    return out


def test_a_round_is_one_statement_per_kind_of_row_and_writes_the_portable_rows(
    pg: tuple[MetadataStore, RoundTrips],
) -> None:
    store, trips = pg
    stamp = now()
    for run_id in ("fastfastfast", "portableport"):
        store.create_run(run_id, "demo", "pipe.py:demo", {}, "thread")
    trips.commands()
    fast = store.fast()
    relax = ["SET"] if fast.relaxed else []
    before = trips.count()
    store.write(starts("fastfastfast", stamp), fast=True)
    store.settle()
    # the steps, the one metric their cached row borrows (merged per round), the attempts
    assert trips.commands() == ["BEGIN", *relax, "INSERT 0 3", "INSERT 0 1", "INSERT 0 1",
                                "COMMIT"]  # fmt: skip
    store.write(ends("fastfastfast", stamp), fast=True)
    store.settle()
    # a step changed twice in the round: two UPDATEs, in order; the rest one statement each
    assert trips.commands() == ["BEGIN", *relax, "UPDATE 1", "UPDATE 1", "UPDATE 1",
                                "INSERT 0 1", "INSERT 0 1", "INSERT 0 4", "INSERT 0 2",
                                "INSERT 0 1", "COMMIT"]  # fmt: skip
    assert trips.count() - before == 2  # one round trip per round (its write's or settle's)
    store.write(starts("portableport", stamp))
    store.write(ends("portableport", stamp))

    fast_rows, portable_rows = (
        rows_as_text(store, "fastfastfast"),
        rows_as_text(store, "portableport"),
    )
    assert fast_rows == portable_rows
    a, b, cached = (fast_rows["step_runs"][i] for i in (0, 2, 1))  # ordered by name
    assert a[1:3] == ("succeeded", "2") and a[4] == stamp_text(store, stamp)  # the last won
    assert a[7] == "null" and a[8] == json.dumps(PARAMS) and a[10] is not None
    assert a[12] == ODD and b[11] == ODD and b[3] is None and b[9] == "null"
    assert cached[1] == "cached"
    assert fast_rows["artifacts"][0][2] == str(2**53 + 1)
    assert [r[3] for r in fast_rows["run_metrics"]] == ["0.5", "NaN", "1e+308", "-Infinity"]
    assert [r[2] for r in fast_rows["run_params"]] == ["null", json.dumps({"ü": ODD})]
    # the cached step borrowed its source's points; the tracked ones are summarised
    summary = {r[0]: r[1:] for r in fast_rows["run_metric_summary"]}
    assert summary == {"inf": ("-Infinity", "1"), "loss": ("1e+308", "3"), "m": ("0.5", "2")}


def stamp_text(store: MetadataStore, stamp: Any) -> str:
    with store.engine.connect() as conn:
        return str(conn.execute(text("SELECT (:s)::timestamptz::text"), {"s": stamp}).scalar_one())


def plain_ends(run_id: str, stamp: Any) -> Batch:
    """A chain's round: a step ends (its row and attempt changed once, its artifact and
    cache entry, what it tracked) and the next one starts."""
    batch = ends(run_id, stamp)
    batch.step_updates = batch.step_updates[1:]  # each row changed once
    nxt = {"run_id": run_id, "name": "c", "kind": "custom", "state": "running",
           "attempts": 1, "started_at": stamp, "cache_key": f"kc-{run_id}",
           "reason": {"summary": ODD}, "params": PARAMS,
           "inputs": {"x": f"h-{run_id}"}}  # fmt: skip
    batch.step_inserts = [nxt]
    batch.attempt_inserts = [{"run_id": run_id, "step": "c", "attempt": 1,
                              "state": "running", "started_at": stamp}]  # fmt: skip
    return batch


def test_a_chains_round_is_one_statement_with_the_portable_rows(
    pg: tuple[MetadataStore, RoundTrips],
) -> None:
    """No cached rows and no row changed twice: every part of the round is one statement
    (its own transaction), and the rows are those the portable path writes."""
    store, trips = pg
    stamp = now()
    for run_id in ("fastfastfast", "portableport"):
        store.create_run(run_id, "demo", "pipe.py:demo", {}, "thread")
        store.write(Batch(step_inserts=starts(run_id, stamp).step_inserts[:1],
                          attempt_inserts=starts(run_id, stamp).attempt_inserts))  # fmt: skip
    trips.commands()
    before = trips.count()
    store.write(plain_ends("fastfastfast", stamp), fast=True)
    store.settle()
    # one statement, all parts in it (sent: in a transaction of its own, not waited for)
    sent = store.writes_unwaited()
    assert trips.commands() == (["BEGIN", "SELECT 1", "COMMIT"] if sent else ["SELECT 1"])
    assert trips.count() - before == 1
    store.write(plain_ends("portableport", stamp))
    fast_rows, portable_rows = (
        rows_as_text(store, "fastfastfast"),
        rows_as_text(store, "portableport"),
    )
    assert fast_rows == portable_rows
    assert [r[1] for r in fast_rows["step_runs"]] == ["succeeded", "running"]  # a, c
    assert len(fast_rows["run_metrics"]) == 4 and len(fast_rows["cache_entries"]) == 1


def test_a_round_in_one_statement_is_all_or_nothing(
    pg: tuple[MetadataStore, RoundTrips],
) -> None:
    store, trips = pg
    store.create_run("halfhalfhalf", "demo", "pipe.py:demo", {}, "thread")
    batch = plain_ends("halfhalfhalf", now())
    batch.attempt_inserts[0]["run_id"] = "nosuchrun000"  # its foreign key fails
    trips.commands()
    with pytest.raises(StoreError, match="cannot record step states: insert or update on"):
        store.write(batch, fast=True)
        store.settle()
    # the one statement failed: nothing completed (sent: its BEGIN, then rolled back)
    assert trips.commands() == (["BEGIN", "ROLLBACK"] if store.writes_unwaited() else [])
    kept = rows_as_text(store, "halfhalfhalf")
    assert kept["step_runs"] == [] and kept["cache_entries"] == [] and kept["run_metrics"] == []
    store.write(plain_ends("halfhalfhalf", now()), fast=True)  # the connection is usable
    assert [r[1] for r in rows_as_text(store, "halfhalfhalf")["step_runs"]] == ["running"]


def test_a_cached_rerun_writes_its_steps_in_one_statement(
    pg: tuple[MetadataStore, RoundTrips], tmp_path: Path
) -> None:
    store, trips = pg
    artifacts = ArtifactStore(tmp_path / "artifacts")
    for _ in range(2):
        engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
        try:
            trips.commands()
            result = engine.run(chain(20), target="tests:chain")
        finally:
            engine.close()
    assert {s.state for s in result.steps} == {"cached"}
    inserts = [c for c in trips.commands() if c.startswith("INSERT")]
    # pipeline, run, steps, the metric points they borrow (none: nothing was logged)
    assert inserts == ["INSERT 0 1", "INSERT 0 1", "INSERT 0 20", "INSERT 0 0"]


def test_a_value_that_is_not_json_is_one_error_naming_the_column(
    pg: tuple[MetadataStore, RoundTrips],
) -> None:
    store, _ = pg
    store.create_run("badbadbadbad", "demo", "pipe.py:demo", {}, "thread")
    batch = starts("badbadbadbad", now())
    batch.step_inserts[0]["params"] = {"model": object()}
    with pytest.raises(StoreError, match=r"^cannot record step_runs\.params: .*JSON values only"):
        store.write(batch, fast=True)
    assert store.step_runs("badbadbadbad") == []


@pytest.fixture
def sent(pg_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(pg_url)  # rounds sent, not waited for
    yield store
    store.close()


def test_no_round_sent_after_a_failed_one_commits(sent: MetadataStore) -> None:
    """Rounds sent one after another without waiting: when one fails, the server skips
    the rounds sent after it, so no step is recorded without the rounds before it; the
    failure is raised once, and the rounds sent after that commit."""
    store = sent
    store.create_run("ordered00000", "demo", "pipe.py:demo", {}, "thread")
    bad = plain_ends("ordered00000", now())
    bad.attempt_inserts[0]["run_id"] = "nosuchrun000"  # its foreign key fails
    good = Batch(step_inserts=[{"run_id": "ordered00000", "name": "later", "kind": "custom",
                                "state": "succeeded", "attempts": 1}])  # fmt: skip
    sent = store.fast().sent
    sent.send(store.fast()._statements(bad))  # as write sends them, with no read between
    sent.send(store.fast()._statements(good))
    with pytest.raises(StoreError, match="cannot record step states: insert or update on"):
        store.settle()
    assert store.step_runs("ordered00000") == []  # nor "later"
    with pytest.raises(StoreError, match="cannot record step states"):
        store.write(bad, fast=True)  # the answer may arrive before the next write or after
        store.write(good, fast=True)
        store.settle()
    assert store.step_runs("ordered00000") == []
    store.write(good, fast=True)
    store.settle()
    assert [r["name"] for r in store.step_runs("ordered00000")] == ["later"]


def test_a_read_elsewhere_in_the_process_sees_the_rounds_sent(
    sent: MetadataStore, pg_url: str
) -> None:
    """A read through another connection (this store's SQLAlchemy pool, another store's
    hot path) waits for the rounds this process sent: read your writes. Each round here
    takes the server a while (a sleep first), so a read that did not wait would miss it."""
    store, fast = sent, sent.fast()
    assert store.writes_unwaited()
    store.create_run("readmine0000", "demo", "pipe.py:demo", {}, "thread")
    other = MetadataStore(pg_url)
    try:
        other.create_run("readother000", "demo", "pipe.py:demo", {}, "thread")
        for k, read in enumerate(("portable", "other hot path")):
            row = {"run_id": "readmine0000", "name": f"s{k}", "kind": "custom",
                   "state": "succeeded", "attempts": 1}  # fmt: skip
            entry = {"cache_key": f"k{k}", "pipeline": "demo", "step": f"s{k}",
                     "outputs": [], "code": {}, "params": {}, "inputs": {},
                     "run_id": "readmine0000", "created_at": now()}  # fmt: skip
            slow = [("SELECT pg_sleep(0.3)", ())]
            with fast.lock:  # as `write` sends a round
                fast._send_unwaited(
                    slow + fast._statements(Batch(step_inserts=[row], cache_entries=[entry]))
                )
            if read == "portable":
                assert [r["name"] for r in store.step_runs("readmine0000")] == ["s0"]
            else:
                assert other.cache_get(f"k{k}", fast=True) is not None
    finally:
        other.close()
