"""The engine's PostgreSQL hot path on a real server: round trips counted from libpq's
protocol trace (orchestrator.store.pgtrace): none for a scheduling round (it is sent and
not waited for, store/pgsent.py), none for the lookups of a first run's steps (the
prefetch found them without entries), one per lookup once that answer is too old, one
for a run's end (with the rounds before it), none for the creation of a run whose id
is fresh (sent with the rounds; a clash records nothing); a re-run's hits
read at once; rounds commit without waiting for the WAL flush unless a setting chose
otherwise (then each is one round trip); a failed batch leaves nothing, nor does any
round sent after it; the rows it writes are the portable path's, byte for byte; a
dropped connection is replaced.

Each test gets a fresh database (`pg_url`, tests/conftest.py) and a real artifact folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from orchestrator import step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine, RunResult
from orchestrator.errors import StoreError
from orchestrator.execution.local import make_executor
from orchestrator.model.pipeline import Pipeline
from orchestrator.state import StepState
from orchestrator.store import pgpath
from orchestrator.store.batch import HeldConnection, full_row
from orchestrator.store.metadata import Batch, MetadataStore, now
from orchestrator.store.pgtrace import RoundTrips

RUN = "r0000000000a"


@step
def add(a: int | None = None, i: int = 0) -> int:
    return (a or 0) + i


def chain(n: int, name: str = "chain", first: int = 0) -> Any:
    spec: list[dict[str, Any]] = [{"name": "s0", "step": add, "params": {"i": first}}]
    spec += [
        {"name": f"s{k}", "step": add, "inputs": {"a": f"s{k - 1}"}, "params": {"i": k}}
        for k in range(1, n)
    ]
    return Pipeline.from_spec(name, spec)


class CountingStore(MetadataStore):
    """A store that notes the round trips of each call the engine makes."""

    trips: RoundTrips

    def count(self) -> None:
        self.trips = RoundTrips(self.engine)
        self.calls: list[tuple[str, int]] = []

    def _counted(self, name: str, fn: Any, *args: Any, **kw: Any) -> Any:
        before = self.trips.count()
        try:
            return fn(*args, **kw)
        finally:
            self.calls.append((name, self.trips.count() - before))

    def write(self, *args: Any, **kw: Any) -> None:
        self._counted("write", super().write, *args, **kw)

    def cache_probe(self, *args: Any, **kw: Any) -> Any:
        return self._counted("probe", super().cache_probe, *args, **kw)

    def cache_prefetch(self, *args: Any, **kw: Any) -> Any:
        return self._counted("prefetch", super().cache_prefetch, *args, **kw)

    def create_run(self, *args: Any, **kw: Any) -> None:
        self._counted("create_run", super().create_run, *args, **kw)

    def finish_run(self, *args: Any, **kw: Any) -> None:
        self._counted("finish_run", super().finish_run, *args, **kw)

    def of(self, name: str) -> list[int]:
        return [n for call, n in self.calls if call == name]


@pytest.fixture
def pg(pg_url: str) -> Iterator[CountingStore]:
    store = CountingStore(pg_url)
    store.count()
    yield store
    store.close()
    store.trips.close()


def run(store: MetadataStore, artifacts: ArtifactStore, graph: Any) -> RunResult:
    engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
    try:
        return engine.run(graph, target="tests:chain")
    finally:
        engine.close()


def test_rounds_cost_no_round_trip_and_a_rerun_reads_its_hits_at_once(
    pg: CountingStore, tmp_path: Path
) -> None:
    artifacts = ArtifactStore(tmp_path / "artifacts")
    first = run(pg, artifacts, chain(6))
    assert {s.state for s in first.steps} == {StepState.SUCCEEDED}
    writes, probes = pg.of("write"), pg.of("probe")
    # a commit before each step whose parent it records, and the last one; one more for a
    # step still running when the commit window closed (timing decides): none waited for
    assert set(writes) == {0} and 6 <= len(writes) <= 13, writes
    assert probes == [0] * 6  # each step a miss the prefetch already knew of
    assert pg.of("prefetch") == [1] and pg.of("finish_run") == [1]
    # the creation is sent, not waited for (its id is fresh); it opens the hot path: the
    # flush setting's read (and a checkout's ping)
    assert pg.of("create_run") in ([1], [2])
    misses = [s.reason["summary"] for s in first.steps if s.reason]
    assert misses == ["no cache entry for this step yet"] * 6

    run(pg, artifacts, chain(12, "long", first=100))  # keys of its own
    totals = {}
    for n, name in ((6, "chain"), (12, "long")):  # a re-run: one read for all its hits
        pg.calls.clear()
        before = pg.trips.count()
        again = run(pg, artifacts, chain(n, name, 0 if n == 6 else 100))
        assert {s.state for s in again.steps} == {StepState.CACHED}
        assert pg.of("probe") == [] and pg.of("prefetch") == [1] and pg.of("write") == [0]
        totals[n] = pg.trips.count() - before
    assert totals == {6: 2, 12: 2}  # the prefetch (with the creation), the end (with the write)


def test_a_first_run_costs_two_round_trips_however_many_rounds(
    pg: CountingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the prefetch's answer holds for the whole run, however slowly a loaded machine runs
    # it (its expiry is the test below)
    monkeypatch.setattr(pgpath, "ABSENT_FOR", 600.0)
    artifacts = ArtifactStore(tmp_path / "artifacts")
    pg.create_run(RUN, "demo", "pipe.py:demo", {}, "thread")  # opens the hot path
    for n in (5, 20):
        pg.calls.clear()
        before = pg.trips.count()
        result = run(pg, artifacts, chain(n, f"c{n}"))
        assert {s.state for s in result.steps} == {StepState.SUCCEEDED}
        rounds = len(pg.of("write"))
        assert n <= rounds <= 2 * n + 1  # see above: a step may outlast the window
        # its one read (with the run's creation) and its end (with every round)
        assert pg.trips.count() - before == 2


def test_a_lookup_reads_again_once_the_prefetch_is_too_old(
    pg: CountingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = ArtifactStore(tmp_path / "artifacts")
    monkeypatch.setattr(pgpath, "ABSENT_FOR", 0.0)
    first = run(pg, artifacts, chain(4))
    assert {s.state for s in first.steps} == {StepState.SUCCEEDED}
    probes = pg.of("probe")  # one read each (psycopg may prepare the fifth: one more)
    assert len(probes) == 4 and all(1 <= n <= 2 for n in probes) and sum(probes) <= 5

    pg.calls.clear()
    assert pg.cache_prefetch("other", ["a", "b", "c"]) == {}  # too old at once
    monkeypatch.setattr(pgpath, "ABSENT_FOR", 60.0)
    for step_name in ("a", "b", "c"):  # the first read renews the answer for all three
        assert pg.cache_probe(f"k-{step_name}", "other", step_name, fast=True) == (None, [])
    assert pg.of("probe") == [1, 0, 0]


def test_an_entry_another_store_commits_is_seen_once_the_window_is_over(
    pg: CountingStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = MetadataStore(pg_url)
    try:
        other.create_run("r00000000009", "demo", "pipe.py:demo", {}, "thread")
        assert pg.cache_prefetch("demo", ["a", "b"]) == {}
        entry = {"cache_key": "k1", "pipeline": "demo", "step": "a", "outputs": [{"hash": "h"}],
                 "code": {"fn": "c"}, "params": {}, "inputs": {}, "run_id": "r00000000009",
                 "created_at": now()}  # fmt: skip
        other.write(Batch(cache_entries=[entry]), fast=True)
        assert pg.cache_probe("k1", "demo", "a", fast=True) == (None, [])  # the prefetch's
        monkeypatch.setattr(pgpath, "ABSENT_FOR", 0.0)
        pg.cache_prefetch("demo", ["a", "b"])  # a fresh answer, at once too old
        hit = {"cache_key": "k1", "outputs": [{"hash": "h"}], "run_id": "r00000000009"}
        assert pg.cache_probe("k1", "demo", "a", fast=True) == (hit, None)
        missed, history = pg.cache_probe("k2", "demo", "b", fast=True)
        assert missed is None and history == []
    finally:
        other.close()


def test_an_entry_this_path_writes_is_never_missed(pg: CountingStore) -> None:
    pg.create_run(RUN, "demo", "pipe.py:demo", {}, "thread")
    assert pg.cache_prefetch("demo", ["a"]) == {}
    entry = {"cache_key": "k1", "pipeline": "demo", "step": "a", "outputs": [{"hash": "h"}],
             "code": {"fn": "c"}, "params": {}, "inputs": {}, "run_id": RUN,
             "created_at": now()}  # fmt: skip
    pg.write(Batch(cache_entries=[entry]), fast=True)
    hit = {"cache_key": "k1", "outputs": [{"hash": "h"}], "run_id": RUN}
    assert pg.cache_probe("k1", "demo", "a", fast=True) == (hit, None)


def setting(store: MetadataStore, sql: str) -> Any:
    return store.fast().conn.execute(sql).fetchone()[0]


def test_rounds_skip_the_flush_wait_unless_a_setting_chose_one(
    pg: CountingStore, pg_url: str
) -> None:
    pg.create_run(RUN, "demo", "pipe.py:demo", {}, "thread")
    assert pg.fast().relaxed
    pg.write(Batch(step_inserts=[step_row("a")]), fast=True)
    pg.settle()
    # the round's SET LOCAL ended with its transaction: the run's end waits for the flush
    assert setting(pg, "SHOW synchronous_commit") == "on"
    assert [r["name"] for r in pg.step_runs(RUN)] == ["a"]
    chosen = MetadataStore(pg_url + "?options=-csynchronous_commit%3Don")
    trips = RoundTrips(chosen.engine)
    try:
        chosen.create_run("r00000000008", "demo", "pipe.py:demo", {}, "thread")
        assert not chosen.fast().relaxed and not chosen.writes_unwaited()
        before = trips.count()
        chosen.write(Batch(step_inserts=[step_row("a", "r00000000008")]), fast=True)
        assert trips.count() - before == 1  # committed when write returns
        assert [r["name"] for r in chosen.step_runs("r00000000008")] == ["a"]
    finally:
        chosen.close()
        trips.close()


def test_a_corrupt_prefetched_entry_is_dropped_and_recomputed(
    pg: CountingStore, tmp_path: Path
) -> None:
    artifacts = ArtifactStore(tmp_path / "artifacts", inline_max=0)  # files to damage
    first = run(pg, artifacts, chain(3))
    s1 = first.step("s1")
    assert s1 is not None and s1.cache_key is not None
    ref = s1.outputs[0]
    artifacts.path(ref).write_bytes(b"99")
    again = run(pg, artifacts, chain(3))
    states = {s.name: s.state for s in again.steps}
    assert states == {"s0": "cached", "s1": "succeeded", "s2": "cached"}
    redone = again.step("s1")
    assert redone is not None and redone.reason is not None
    assert redone.reason["summary"].startswith(f"artifact {ref.hash[:12]} is corrupt")
    assert pg.cache_get(s1.cache_key) is not None  # dropped, then written again
    assert artifacts.verify(ref) is None


def step_row(name: str, run_id: str = RUN, **kw: Any) -> dict[str, Any]:
    return {"run_id": run_id, "name": name, "kind": "custom", "state": "running", **kw}


def artifact_row(h: str) -> dict[str, Any]:
    return {"hash": h, "serializer": "json", "type": "builtins:int", "size": 2,
            "run_id": RUN, "step": "a", "created_at": now()}  # fmt: skip


def count_rows(store: MetadataStore, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_failed_batch_commits_nothing_and_the_next_one_goes_through(pg: CountingStore) -> None:
    pg.create_run(RUN, "demo", "pipe.py:demo", {}, "thread")
    pg.write(Batch(step_inserts=[step_row("a")]), fast=True)
    bad = Batch(step_inserts=[step_row("b"), step_row("a")], artifacts={"h1": artifact_row("h1")})
    with pytest.raises(StoreError) as err:
        pg.write(bad, fast=True)
        pg.settle()  # sent, not waited for: its answer raises
    assert str(err.value).startswith("cannot record step states: duplicate key value")
    assert "\n" not in str(err.value)
    assert [r["name"] for r in pg.step_runs(RUN)] == ["a"]  # nor "b", nor the artifact
    assert count_rows(pg, "artifacts") == 0
    pg.write(Batch(step_inserts=[step_row("b")], artifacts={"h1": artifact_row("h1")}), fast=True)
    assert [r["name"] for r in pg.step_runs(RUN)] == ["a", "b"]
    assert count_rows(pg, "artifacts") == 1


def rows_as_text(store: MetadataStore, run_id: str) -> list[tuple[Any, ...]]:
    cols = "name, kind, state, attempts, started_at, ended_at, duration, cache_key, reason, " \
        "params, inputs, outputs, error, log"  # fmt: skip
    sql = f"SELECT {', '.join(f'({c})::text' for c in cols.split(', '))} FROM step_runs " \
        "WHERE run_id = :r ORDER BY name"  # fmt: skip
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), {"r": run_id})]


def test_the_hot_path_writes_the_portable_paths_rows(pg: CountingStore) -> None:
    stamp = now()
    for run_id, fast in (("fastfastfast", True), ("portableport", False)):
        pg.create_run(run_id, "demo", "pipe.py:demo", {}, "thread")
        rows = [
            step_row("a", run_id, attempts=1, started_at=stamp, params={"n": 1.0}),
            step_row("b", run_id, reason={"cache": "miss"}, inputs={"x": "h"}),
        ]
        update = {"run_id": run_id, "name": "a", "state": "succeeded", "attempts": 1,
                  "ended_at": stamp, "duration": 0.5, "outputs": [{"hash": "h"}],
                  "log": "ok\n", "error": None, "reason": None, "cache_key": "k",
                  "inputs": {}}  # fmt: skip
        pg.write(Batch(step_inserts=rows), fast=fast)
        pg.write(Batch(step_updates=[update]), fast=fast)
    fast_rows, portable_rows = rows_as_text(pg, "fastfastfast"), rows_as_text(pg, "portableport")
    assert fast_rows == portable_rows
    assert fast_rows[0][9] == '{"n": 1.0}' and fast_rows[1][11] == "null"


def test_a_dropped_connection_is_one_error_then_replaced(pg: CountingStore, pg_url: str) -> None:
    pg.create_run(RUN, "demo", "pipe.py:demo", {}, "thread")
    assert pg.cache_probe("k", "demo", "a", fast=True) == (None, [])
    pid = pg.fast().conn.info.backend_pid
    conninfo = make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError, match=r"^cannot read the cache index: "):
        pg.cache_probe("k", "demo", "a", fast=True)
    assert pg.cache_probe("k", "demo", "a", fast=True) == (None, [])
    pg.write(Batch(step_inserts=[step_row("a")]), fast=True)
    assert pg.fast().conn.info.backend_pid != pid
    assert [r["name"] for r in pg.step_runs(RUN)] == ["a"]


def test_a_round_sent_on_a_dropped_connection_is_one_error_then_replaced(
    pg: CountingStore, pg_url: str
) -> None:
    """A round sent (not waited for) on a connection the server dropped is lost: the
    write or the next wait says so once, and the next round goes on a new connection."""
    pg.create_run(RUN, "demo", "pipe.py:demo", {}, "thread")
    pg.write(Batch(step_inserts=[step_row("a")]), fast=True)
    pg.settle()
    pid = pg.fast().conn.info.backend_pid
    conninfo = make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError, match=r"^cannot record step states: "):
        pg.write(Batch(step_inserts=[step_row("b")]), fast=True)
        pg.settle()
    pg.write(Batch(step_inserts=[step_row("c")]), fast=True)
    pg.settle()
    assert pg.fast().conn.info.backend_pid != pid
    assert [r["name"] for r in pg.step_runs(RUN)] == ["a", "c"]


def test_a_fresh_run_is_created_unwaited_and_a_clash_records_nothing(pg: CountingStore) -> None:
    """A run whose id was just drawn is created without a round trip; were the id taken
    all the same, nothing the run did is recorded, nor its end, and the other run keeps
    its rows."""
    pg.create_run(RUN, "demo", "pipe.py:demo", {}, "thread")
    pg.write(Batch(step_inserts=[step_row("a")]), fast=True)
    pg.settle()
    before = pg.trips.count()
    pg.create_run("r0000000000b", "demo", "pipe.py:demo", {}, "thread", fresh=True)
    assert pg.trips.count() == before  # sent, not waited for
    pg.finish_run("r0000000000b", "succeeded")
    assert pg.get_run("r0000000000b")["status"] == "succeeded"

    pg.create_run(RUN, "demo", "pipe.py:demo", {}, "thread", fresh=True)  # as if drawn again
    with pytest.raises(StoreError, match=f"^run {RUN} already exists; it cannot start twice$"):
        pg.write(Batch(step_inserts=[step_row("b")]), fast=True)  # raises, or the end does
        pg.finish_run(RUN, "succeeded")
    pg.finish_run(RUN, "failed")  # the engine records the end after the failure: not here
    pg.finish_run(RUN, "failed")
    assert pg.get_run(RUN)["status"] == "running"
    assert [r["name"] for r in pg.step_runs(RUN)] == ["a"]


def test_other_drivers_hold_one_connection_with_the_same_answers(pg: CountingStore) -> None:
    """The hot path of a driver without pipeline mode: one held SQLAlchemy connection."""
    held = HeldConnection(pg.writer)
    try:
        pg.create_run(RUN, "demo", "pipe.py:demo", {}, "thread")
        entry = {"cache_key": "k1", "pipeline": "demo", "step": "a", "outputs": [{"hash": "h"}],
                 "code": {"fn": "c"}, "params": {}, "inputs": {}, "run_id": RUN,
                 "created_at": now()}  # fmt: skip
        held.write(Batch(step_inserts=[full_row(step_row("a"))], cache_entries=[entry]))
        hit = {"cache_key": "k1", "outputs": [{"hash": "h"}], "run_id": RUN}
        assert held.probe("k1", "demo", "a", 50) == (hit, None)
        missed, history = held.probe("k2", "demo", "a", 50)
        assert missed is None and [h["cache_key"] for h in history or []] == ["k1"]
        assert held.prefetch("demo", ["a"]) == {}
        assert [r["name"] for r in pg.step_runs(RUN)] == ["a"]
    finally:
        held.close()
