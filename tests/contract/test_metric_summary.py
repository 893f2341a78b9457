"""The per-run metric summary on SQLite and a real PostgreSQL server: what the triggers
keep (own points, a step taken from the cache, a step updated to cached, a step cached
from its own run), the runs table ranked from it equal to the correlated-subquery ranking
it replaces (ties, runs missing the metric, pages, selections, metric filters), and the
0010 migration's backfill of rows stored before it (equal to what the triggers keep).

Rows are written in the shapes the engine writes them, through the engine's hot path and
the portable path alike (`Batch`, `MetadataStore.write`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import and_, func, insert, inspect, literal_column, select, update

from orchestrator.experiments import query
from orchestrator.store import borrowed, db
from orchestrator.store import schema as t
from orchestrator.store.batch import full_row
from orchestrator.store.metadata import Batch, MetadataStore
from orchestrator.store.ranking import Condition, RankingRepository

T0 = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
RUNS = [f"r{i:02d}" for i in range(12)]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orchestrator.db'}"
    return str(request.getfixturevalue("pg_url"))


# -- the rows: ties, series, missing metrics, cache hits -----------------------------------


def _run_row(i: int, rid: str) -> dict[str, Any]:
    when = T0 + dt.timedelta(minutes=min(i, 3) if i in (3, 4) else i)  # r03, r04: same start
    return {
        "id": rid,
        "pipeline": "other" if rid == "r10" else "exp",
        "target": "exp.py:exp",
        "status": "failed" if rid == "r11" else "succeeded",
        "params": {"C": float(i % 3)},
        "executor": "thread",
        "started_at": when,
        "ended_at": when,
    }


def point(rid: str, step: str, value: float, name: str = "acc", pos: int | None = None) -> dict:
    return {"run_id": rid, "step": step, "name": name, "position": pos, "value": value}


def cached(rid: str, step: str, source: str) -> dict[str, Any]:
    reason = {"cache": "hit", "summary": "", "from_run": source}
    return {"run_id": rid, "name": step, "kind": "custom", "state": "cached", "reason": reason}


def step(rid: str, name: str, state: str = "succeeded") -> dict[str, Any]:
    return {"run_id": rid, "name": name, "kind": "custom", "state": state, "reason": None}


def batches() -> list[tuple[Batch, bool]]:
    """(batch, through the hot path) in writing order (that order is the points' ids)."""
    stamp = {"logged_at": T0}

    def b(steps: list[dict[str, Any]], points: list[dict[str, Any]]) -> Batch:
        batch = Batch(step_inserts=steps)
        batch.add("run_metrics", [p | stamp for p in points])
        return batch

    return [
        (b([step("r00", "evaluate")], [point("r00", "evaluate", 0.5)]), True),
        (b([step("r01", "evaluate")], [point("r01", "evaluate", 0.5)]), False),  # a tie
        (
            b(
                [step("r02", "train")],
                [point("r02", "train", 0.9, pos=0), point("r02", "train", 0.1, pos=1)],
            ),
            True,
        ),  # a series: the last point, not the best
        (b([step("r04", "train")], [point("r04", "train", 2.0, name="loss")]), True),
        (b([cached("r05", "evaluate", "r00")], []), True),  # only what the cache brings
        (b([step("r06", "train")], [point("r06", "train", 0.7)]), True),
        (b([step("r07", "evaluate")], [point("r07", "evaluate", 0.2)]), False),
        (b([cached("r06", "evaluate", "r07")], []), False),  # logged later than r06's own
        (b([step("r08", "evaluate", "running")], []), True),
        (b([step("r09", "evaluate")], [point("r09", "evaluate", 0.3)]), True),
        (b([cached("r09", "score", "r09")], [point("r09", "score", 0.3, name="f1")]), True),
        (b([step("r10", "evaluate")], [point("r10", "evaluate", 1.0)]), False),
        (b([step("r11", "evaluate")], [point("r11", "evaluate", 0.5)]), True),
    ]


def fill(store: MetadataStore) -> None:
    with store.tx() as conn:
        conn.execute(insert(t.runs), [_run_row(i, rid) for i, rid in enumerate(RUNS)])
    for batch, fast in batches():
        store.write(batch, fast=fast)
    # a running step that ends as a cache hit: an update, not an insert
    update_to_cached = cached("r08", "evaluate", "r01") | {"attempts": 0}
    store.write(Batch(step_updates=[update_to_cached]), fast=True)
    store.write(Batch(step_updates=[update_to_cached]), fast=False)  # once only, still


def summary_rows(store: MetadataStore) -> dict[tuple[str, str], tuple[float, int]]:
    s = t.run_metric_summary.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(s.run_id, s.name, s.value, s.points))
        return {(rid, name): (value, points) for rid, name, value, points in rows}


def tracked(store: MetadataStore) -> dict[tuple[str, str], tuple[float, int]]:
    """What `TrackingRepository.summaries` counts, as the summary table holds it."""
    out: dict[tuple[str, str], tuple[float, int]] = {}
    for rid, summary in store.tracking.summaries(RUNS).items():
        for name, value in summary["metrics"].items():
            points = len(summary["series"].get(name, [])) or _singles(store, rid, name)
            out[rid, name] = (value, points)
    return out


def _singles(store: MetadataStore, rid: str, name: str) -> int:
    """Points of a metric with no series (each single value is one point)."""
    m, s = t.run_metrics.c, t.step_runs.c
    with store.engine.connect() as conn:
        steps = conn.execute(select(s.name, s.state, s.reason).where(s.run_id == rid)).all()
        n = conn.execute(select(func.count()).where(m.run_id == rid, m.name == name)).scalar()
        for step_name, state, reason in steps:
            source = (reason or {}).get("from_run")
            if state == "cached" and source and source != rid:
                q = select(func.count()).where(
                    m.run_id == source, m.step == step_name, m.name == name
                )
                n += conn.execute(q).scalar()
    return int(n or 0)


EXPECTED = {
    ("r00", "acc"): (0.5, 1),
    ("r01", "acc"): (0.5, 1),
    ("r02", "acc"): (0.1, 2),
    ("r04", "loss"): (2.0, 1),
    ("r05", "acc"): (0.5, 1),
    ("r06", "acc"): (0.2, 2),
    ("r07", "acc"): (0.2, 1),
    ("r08", "acc"): (0.5, 1),
    ("r09", "acc"): (0.3, 1),
    ("r09", "f1"): (0.3, 1),
    ("r10", "acc"): (1.0, 1),
    ("r11", "acc"): (0.5, 1),
}


def test_triggers_keep_each_runs_last_point_and_count_cache_hits(store_url: str) -> None:
    store = MetadataStore(store_url)
    try:
        fill(store)
        assert summary_rows(store) == EXPECTED
        assert tracked(store) == EXPECTED  # what the run pages show agrees
    finally:
        store.close()


# -- the ranking equals the correlated-subquery ranking it replaces ------------------------

_CACHED = literal_column("'cached'")


def old_last_value(name: str, postgres: bool) -> Any:
    """The ranking's value per run before the summary table: the last point of the run's
    own rows and its cached steps' rows, by correlated subqueries on `run_metrics`."""
    m, src, v = (t.run_metrics.alias(f"{x}_{name}") for x in ("m", "b", "v"))
    s = t.step_runs.c
    from_run = t.step_runs.c.reason["from_run"].as_string()
    own = (
        select(func.max(m.c.id))
        .where(m.c.run_id == t.runs.c.id, m.c.name == name)
        .correlate(t.runs)
    )
    borrowed = (
        select(func.max(src.c.id))
        .select_from(t.step_runs.join(src, and_(src.c.run_id == from_run, src.c.step == s.name)))
        .where(s.run_id == t.runs.c.id, s.state == _CACHED, src.c.name == name)
        .where(from_run != s.run_id)
        .correlate(t.runs)
    )
    a, b = own.scalar_subquery(), borrowed.scalar_subquery()
    last = func.greatest(a, b) if postgres else func.max(func.coalesce(a, -1), func.coalesce(b, -1))
    return select(v.c.value).where(v.c.id == last).scalar_subquery()


def old_ranked(store: MetadataStore, sort: str, descending: bool, **how: Any) -> list[str]:
    r, postgres = t.runs.c, store.db.engine.dialect.name == "postgresql"
    value = old_last_value(sort, postgres)
    q = select(r.id).where(
        *([r.pipeline == how["pipeline"]] if how.get("pipeline") else []),
        *([r.status == how["status"]] if how.get("status") else []),
    )
    for c in how.get("conditions", []):
        if c.kind == "param":  # parameter predicates are not what changed: shared
            q = q.where(RankingRepository(store.db)._param_predicate(c))
            continue
        got = old_last_value(c.name, postgres)
        q = q.where({">": got > c.number, "!=": (got != c.number) | got.is_(None)}[c.op])
    order = (value.desc() if descending else value.asc()).nulls_last()
    q = q.order_by(order, r.started_at.desc(), r.id.desc())
    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(q)]


SELECTIONS: list[dict[str, Any]] = [
    {},
    {"pipeline": "exp"},
    {"status": "succeeded", "pipeline": "exp"},
    {"conditions": [Condition("acc", "metric", ">", "0.3", 0.3)]},
    {"conditions": [Condition("acc", "metric", "!=", "0.5", 0.5)], "pipeline": "exp"},
    {
        "conditions": [
            Condition("C", "param", "=", "1", 1.0),
            Condition("acc", "metric", "!=", "1", 1.0),
        ]
    },
]


@pytest.mark.parametrize("how", SELECTIONS, ids=["all", "pipeline", "status", "gt", "ne", "param"])
def test_ranked_pages_equal_the_correlated_subquery_ranking(
    store_url: str, how: dict[str, Any]
) -> None:
    store = MetadataStore(store_url)
    try:
        fill(store)
        repo = RankingRepository(store.db)
        args = {"conditions": [], "pipeline": None, "status": None} | how
        for descending in (False, True):
            want = old_ranked(store, "acc", descending, **how)
            assert want, "the selection is not empty"
            for limit in (1, 3, 5, 50):
                pages = [
                    repo.ranked(sort="acc", descending=descending, limit=limit, offset=o, **args)
                    for o in range(0, len(want) + limit, limit)
                ]
                assert [rid for p in pages for rid in p] == want, (descending, limit)
    finally:
        store.close()


def test_ties_missing_metrics_and_cache_hits_in_the_runs_table(store_url: str) -> None:
    store = MetadataStore(store_url)
    try:
        fill(store)
        rows = query(store, sort="-acc", limit=20)
        # ties newest first; runs without `acc` last, newest first (r03, r04: same start)
        want = ["r10", "r11", "r08", "r05", "r01", "r00", "r09", "r07", "r06", "r02"]
        assert [r["id"] for r in rows] == want + ["r04", "r03"]
        assert rows[3]["metrics"] == {"acc": 0.5}  # r05: its cached step's metric
        up = query(store, sort="acc", filters=["C=1"], limit=20)
        assert [r["id"] for r in up] == ["r07", "r01", "r10", "r04"]
        both = query(store, filters=["acc>=0.5", "C!=1"], limit=3)
        assert [r["id"] for r in both] == ["r11", "r08", "r05"]
    finally:
        store.close()


# -- the 0010 migration backfills what was stored before it -------------------------------


def _alembic(url: str, verb: str, revision: str) -> None:
    engine = db.connect(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, verb)(cfg, revision)
    finally:
        engine.dispose()


def _fill_at_0009(url: str) -> None:
    """The rows `fill` writes, inserted into a schema at 0009 (no summary, no triggers)."""
    engine = db.connect(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(t.runs), [_run_row(i, rid) for i, rid in enumerate(RUNS)])
            for batch, _ in batches():
                steps = [{c.name: r.get(c.name) for c in t.step_runs.columns if c.name != "id"}
                         | {"attempts": 0} for r in batch.step_inserts]  # fmt: skip
                if steps:
                    conn.execute(insert(t.step_runs), steps)
                if batch.rows:
                    conn.execute(insert(t.run_metrics), batch.rows["run_metrics"])
            s = t.step_runs.c
            done = cached("r08", "evaluate", "r01")
            conn.execute(
                update(t.step_runs)
                .where(s.run_id == "r08", s.name == "evaluate")
                .values(state="cached", reason=done["reason"])
            )
    finally:
        engine.dispose()


def test_migration_0010_backfills_summaries_and_round_trips(store_url: str) -> None:
    _alembic(store_url, "upgrade", "0009")
    _fill_at_0009(store_url)
    store = MetadataStore(store_url)  # opening migrates to head: the backfill
    try:
        assert db.current_revision(store.engine) == db.HEAD
        assert summary_rows(store) == EXPECTED
        insp = inspect(store.engine)
        indexes = {
            table: {i["name"] for i in insp.get_indexes(table)}
            for table in ("run_metric_summary", "run_params", "step_runs")
        }
        assert "ix_run_metric_summary_name_value" in indexes["run_metric_summary"]
        assert "ix_run_params_name" in indexes["run_params"]
        assert "ix_step_runs_cached" in indexes["step_runs"]
        # the triggers run from here on: a new point of r02 and a new cache hit
        store.write(Batch(rows={"run_metrics": [point("r02", "train", 0.8) | {"logged_at": T0}]}))
        store.write(Batch(step_inserts=[cached("r03", "evaluate", "r10")]), fast=True)
        got = summary_rows(store)
        assert got[("r02", "acc")] == (0.8, 3) and got[("r03", "acc")] == (1.0, 1)
    finally:
        store.close()
    _alembic(store_url, "downgrade", "0009")
    engine = db.connect(store_url)
    try:
        with engine.begin() as conn:  # no trigger left behind to fail on a missing table
            conn.execute(insert(t.run_metrics), [point("r04", "x", 1.0) | {"logged_at": T0}])
    finally:
        engine.dispose()
    _alembic(store_url, "upgrade", "head")
    store = MetadataStore(store_url)
    try:
        assert summary_rows(store)[("r04", "acc")] == (1.0, 1)
        assert summary_rows(store)[("r02", "acc")] == (0.8, 3)
    finally:
        store.close()


# -- 0013 (SQLite), 0014 (PostgreSQL): a batch's borrowed points merged by one statement --


def _many_cached_batch() -> Batch:
    """One batch of several cached rows of one run (two borrow the same metric, one
    borrows from its own run, one from a run with no points) beside a step that ran."""
    return Batch(
        step_inserts=[
            cached("r03", "train", "r02"),
            cached("r03", "evaluate", "r01"),
            cached("r03", "score", "r09"),
            step("r03", "report"),
            cached("r04", "evaluate", "r04"),
            cached("r05", "train", "r11"),
        ]
    )


# the revision before each database's writers took over from the row trigger
ROW_TRIGGER_AT = {"sqlite": "0012", "postgresql": "0013"}


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """(database, a store's URL, another store's URL): two empty stores to compare."""
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / label}.db" for label in ("head", "before")]
    else:
        urls = [request.getfixturevalue(f) for f in ("pg_url", "pg_other_url")]
    return request.param, urls[0], urls[1]


@pytest.mark.parametrize("fast", [True, False], ids=["hot", "portable"])
def test_a_batch_of_cached_rows_merges_what_the_row_trigger_merged(
    two_urls: tuple[str, str, str], fast: bool
) -> None:
    dialect, head_url, before_url = two_urls
    store = MetadataStore(head_url)
    try:
        fill(store)
        store.write(_many_cached_batch(), fast=fast)
        got_head = summary_rows(store)
    finally:
        store.close()
    store = MetadataStore(before_url)
    fill(store)
    store.close()
    _alembic(before_url, "downgrade", ROW_TRIGGER_AT[dialect])  # the row trigger is back
    engine = db.connect(before_url)
    try:
        rows = [full_row(r) for r in _many_cached_batch().step_inserts]
        with engine.begin() as conn:  # inserted as before: the trigger merges each row
            conn.execute(insert(t.step_runs), rows)
        got_before = summary_rows(SimpleNamespace(engine=engine))  # type: ignore[arg-type]
    finally:
        engine.dispose()
    assert got_head == got_before
    assert got_head[("r03", "acc")] == (0.1, 3)  # r02's two (0.1 the newest), r01's one
    assert got_head[("r03", "f1")] == (0.3, 1)  # r09's score
    assert got_head[("r04", "loss")] == (2.0, 1)  # borrowed from its own run: not again


def _names(url: str, sql: str) -> set[str]:
    """The names a one-column query lists (the database's triggers)."""
    engine = db.connect(url)
    try:
        with engine.connect() as conn:
            return set(conn.exec_driver_sql(sql).scalars())
    finally:
        engine.dispose()


def test_migration_0013_drops_the_row_trigger_on_sqlite_and_round_trips(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    MetadataStore(url).close()

    def triggers() -> set[str]:
        return _names(url, "SELECT name FROM sqlite_master WHERE type = 'trigger'")

    assert "tr_step_runs_cached_insert_summary" not in triggers()
    assert "tr_step_runs_cached_update_summary" in triggers()
    _alembic(url, "downgrade", "0012")
    assert "tr_step_runs_cached_insert_summary" in triggers()
    _alembic(url, "upgrade", "head")
    assert "tr_step_runs_cached_insert_summary" not in triggers()


def test_a_batchs_borrowed_points_read_only_the_rows_it_inserted(tmp_path: Path) -> None:
    """The statement walks the id range of the batch's rows, not an index over every
    run's step runs (which would make each batch cost as much as the whole history)."""
    store = MetadataStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    try:
        with store.engine.connect() as conn:
            sql = "EXPLAIN QUERY PLAN " + borrowed.SQLITE_BORROWED.split("ON CONFLICT")[0]
            plan = [row[-1] for row in conn.exec_driver_sql(sql, (0,))]
    finally:
        store.close()
    assert any(p.startswith("SEARCH st USING INTEGER PRIMARY KEY (rowid>?)") for p in plan), plan


def test_migration_0014_drops_the_row_trigger_on_postgresql_and_round_trips(pg_url: str) -> None:
    MetadataStore(pg_url).close()

    def triggers() -> set[str]:
        return _names(pg_url, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")

    kept = {"tr_run_metrics_summary", "tr_step_runs_cached_update_summary"}
    assert triggers() == kept
    _alembic(pg_url, "downgrade", "0013")
    assert triggers() == kept | {"tr_step_runs_cached_insert_summary"}
    _alembic(pg_url, "upgrade", "head")
    assert triggers() == kept
    store = MetadataStore(pg_url)  # and the summary is kept from there on
    try:
        fill(store)
        assert summary_rows(store) == EXPECTED
    finally:
        store.close()
