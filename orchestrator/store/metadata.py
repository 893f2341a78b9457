"""The metadata store: pipelines, runs, step runs, artifacts, the cache index, model versions.

The engine writes through `write(batch)`: one transaction per scheduling round, holding
every state change of that round, so a finished step is durable before any step that
depends on it starts, at the cost of one commit per round rather than one per change.
Reads return plain dicts. Any SQLAlchemy URL works; nothing here assumes SQLite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import psutil
from sqlalchemy import Connection, Engine, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from orchestrator.artifacts.store import ArtifactRef
from orchestrator.errors import NotFound, StoreError
from orchestrator.state import RunStatus, StepState
from orchestrator.store import schema as t
from orchestrator.store.db import connect, first_line, migrate


def canonical_json(data: dict[str, Any]) -> dict[str, Any]:
    from orchestrator.cache.hashing import canonical

    return dict(canonical(data))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass
class Batch:
    """State changes gathered during one scheduling round, written in one transaction."""

    step_inserts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    step_updates: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    cache_entries: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.step_inserts or self.step_updates or self.artifacts or self.cache_entries)


_UPDATE_COLS = (
    "state",
    "attempts",
    "ended_at",
    "duration",
    "reason",
    "outputs",
    "error",
    "log",
    "cache_key",
    "inputs",
)


class MetadataStore:
    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or connect(url)
        self._host = socket.gethostname()
        try:
            migrate(self.engine)
        except OperationalError as exc:
            raise StoreError(f"cannot open metadata store: {exc.orig}") from None
        self._update_stmt = (
            update(t.step_runs)
            .where(
                and_(
                    t.step_runs.c.run_id == bindparam("_run"),
                    t.step_runs.c.name == bindparam("_name"),
                )
            )
            .values({c: bindparam(c) for c in _UPDATE_COLS})
        )
        self._dialect = self.engine.dialect.name
        self._insert_step = insert(t.step_runs)
        self._ignore = {
            tbl.name: self._insert_ignore(tbl)
            for tbl in (t.artifacts, t.cache_entries, t.pipelines)
        }
        self._cache_get = select(t.cache_entries.c.outputs, t.cache_entries.c.run_id).where(
            t.cache_entries.c.cache_key == bindparam("key")
        )
        self._fast: Any = None

    @contextlib.contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it takes the write lock at BEGIN)."""
        with self.engine.connect().execution_options(orch_write=True) as conn, conn.begin():
            yield conn

    def fast(self) -> Any:
        """The engine thread's hot path: raw sqlite3 on SQLite, else one held connection
        (no pool checkout and liveness ping per statement)."""
        if self._fast is None:
            if self._dialect == "sqlite":
                from orchestrator.store.fastpath import SqliteFastPath

                self._fast = SqliteFastPath(self.engine, _STEP_COLS, _UPDATE_COLS)
            else:
                self._fast = _HeldConnection(self)
        return self._fast

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        self.engine.dispose()

    # -- writes -------------------------------------------------------------------------
    def _insert_ignore(self, table: Any) -> Any:
        """`INSERT ... ON CONFLICT DO NOTHING` where the dialect has it, else None."""
        if self._dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table).on_conflict_do_nothing()
        if self._dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table).on_conflict_do_nothing()
        return None

    def _upsert_ignore(self, conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        stmt = self._ignore[table.name]
        if stmt is not None:
            conn.execute(stmt, rows)
            return
        for row in rows:  # portable fallback
            try:
                with conn.begin_nested():
                    conn.execute(insert(table), row)
            except IntegrityError:
                pass

    def write(self, batch: Batch, fast: bool = False) -> None:
        """Record a batch in one transaction (`fast`: through the SQLite hot path, if any)."""
        if not batch:
            return
        try:
            if fast:
                batch.step_inserts = [_full_row(r) for r in batch.step_inserts]
                self.fast().write(batch)
                return
            with self.tx() as conn:
                self.write_rows(conn, batch)
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise StoreError(f"cannot record step states: {first_line(exc)}") from None

    def write_rows(self, conn: Connection, batch: Batch) -> None:
        """A batch's statements, in the caller's transaction (the portable path)."""
        if batch.step_inserts:
            conn.execute(self._insert_step, [_full_row(r) for r in batch.step_inserts])
        if batch.step_updates:
            rows = [
                {c: r.get(c) for c in _UPDATE_COLS} | {"_run": r["run_id"], "_name": r["name"]}
                for r in batch.step_updates
            ]
            conn.execute(self._update_stmt, rows)
        self._upsert_ignore(conn, t.artifacts, list(batch.artifacts.values()))
        self._upsert_ignore(conn, t.cache_entries, batch.cache_entries)

    def create_run(
        self,
        run_id: str,
        pipeline: str,
        target: str,
        params: dict[str, Any],
        executor: str,
        resumed_from: str | None = None,
        trigger: dict[str, Any] | None = None,
    ) -> None:
        """Record the pipeline (name -> how to load it) and a new running run, in one go."""
        try:
            self._create_run(run_id, pipeline, target, params, executor, resumed_from, trigger)
        except IntegrityError:
            raise StoreError(f"run {run_id} already exists; it cannot start twice") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot record run {run_id}: {first_line(exc)}") from None

    def _create_run(
        self,
        run_id: str,
        pipeline: str,
        target: str,
        params: dict[str, Any],
        executor: str,
        resumed_from: str | None,
        trigger: dict[str, Any] | None,
    ) -> None:
        stamp = now()
        with self.tx() as conn:
            done = conn.execute(
                update(t.pipelines)
                .where(t.pipelines.c.name == pipeline)
                .values(ref=target, updated_at=stamp)
            ).rowcount
            if not done:
                self._upsert_ignore(
                    conn, t.pipelines, [{"name": pipeline, "ref": target, "updated_at": stamp}]
                )
            conn.execute(
                insert(t.runs).values(
                    id=run_id,
                    pipeline=pipeline,
                    target=target,
                    status=RunStatus.RUNNING,
                    params=params,
                    executor=executor,
                    started_at=stamp,
                    host=self._host,
                    pid=os.getpid(),
                    resumed_from=resumed_from,
                    trigger=trigger or {"kind": "manual"},
                )
            )

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        with self.tx() as conn:
            conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(status=status, ended_at=now(), error=error)
            )
            if status != RunStatus.SUCCEEDED:
                conn.execute(
                    update(t.step_runs)
                    .where(
                        and_(
                            t.step_runs.c.run_id == run_id,
                            t.step_runs.c.state == StepState.RUNNING,
                        )
                    )
                    .values(state=StepState.INTERRUPTED, ended_at=now())
                )

    # -- cache index --------------------------------------------------------------------
    def cache_get(self, key: str, fast: bool = False) -> dict[str, Any] | None:
        """The cache entry for a key (outputs and run id), or None."""
        if fast:
            return self.fast().cache_get(key)  # type: ignore[no-any-return]
        with self.engine.connect() as conn:
            return self.cache_row(conn, key)

    def cache_row(self, conn: Connection, key: str) -> dict[str, Any] | None:
        row = conn.execute(self._cache_get, {"key": key}).first()
        return None if row is None else {"cache_key": key, "outputs": row[0], "run_id": row[1]}

    def cache_history(
        self, pipeline: str, step: str, limit: int = 50, fast: bool = False
    ) -> list[dict[str, Any]]:
        """A step's most recent cache entries, oldest first (what `explain` compares with)."""
        if fast:
            return self.fast().history(pipeline, step, limit)  # type: ignore[no-any-return]
        with self.engine.connect() as conn:
            return self.history_rows(conn, pipeline, step, limit)

    def history_rows(
        self, conn: Connection, pipeline: str, step: str, limit: int
    ) -> list[dict[str, Any]]:
        c = t.cache_entries.c
        rows = conn.execute(
            select(t.cache_entries)
            .where(and_(c.pipeline == pipeline, c.step == step))
            .order_by(c.created_at.desc())
            .limit(limit)
        )
        return [dict(r._mapping) for r in rows][::-1]

    def artifact_rows(self, hashes: Iterable[str]) -> dict[str, dict[str, Any]]:
        hashes = list(set(hashes))
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(hashes), 500):
                rows = conn.execute(
                    select(t.artifacts).where(t.artifacts.c.hash.in_(hashes[i : i + 500]))
                )
                out.update({r.hash: dict(r._mapping) for r in rows})
        return out

    def artifact_ref(self, hash_: str) -> ArtifactRef | None:
        """The stored artifact with this content hash (how to read it), if recorded."""
        row = self.artifact_rows([hash_]).get(hash_)
        if row is None:
            return None
        return ArtifactRef(row["hash"], row["serializer"], row["type"], row["size"])

    def drop_cache_entries(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            with self.tx() as conn:
                conn.execute(delete(t.cache_entries).where(t.cache_entries.c.cache_key.in_(keys)))

    # -- claims -------------------------------------------------------------------------
    def claim(self, kind: str, key: str, owner: str) -> bool:
        """Take one item of shared work (a tick, an event); True for exactly one caller."""
        with self.tx() as conn:
            return self._claim_in(
                conn, {"kind": kind, "key": key, "owner": owner, "claimed_at": now()}
            )

    def _claim_in(self, conn: Connection, row: dict[str, Any]) -> bool:
        stmt = self._insert_ignore(t.claims)
        if stmt is not None:
            return conn.execute(stmt.values(row).returning(t.claims.c.key)).first() is not None
        try:
            with conn.begin_nested():
                conn.execute(insert(t.claims), row)
            return True
        except IntegrityError:
            return False

    def claim_launch(
        self,
        claims: list[tuple[str, str]],
        owner: str,
        *,
        run_id: str,
        source: str,
        args: list[str],
        status: str = "pending",
        event: dict[str, Any] | None = None,
    ) -> bool:
        """Claim items of work (kind, key) and record the run they start, in one transaction:
        all claims and the launch (and, with `event`, the event's `started` record: its
        id and reason) exist together or not at all. False if any item was taken already."""
        stamp = now()

        class _Taken(Exception):
            pass

        try:
            with self.tx() as conn:
                for kind, key in claims:
                    row = {"kind": kind, "key": key, "owner": owner, "claimed_at": stamp}
                    if not self._claim_in(conn, row):
                        raise _Taken
                conn.execute(
                    insert(t.launches).values(
                        run_id=run_id,
                        source=source,
                        key=claims[0][1],
                        args=args,
                        status=status,
                        owner=owner,
                        created_at=stamp,
                        updated_at=stamp,
                    )  # fmt: skip
                )
                if event is not None:
                    conn.execute(
                        update(t.events)
                        .where(t.events.c.id == event["id"])
                        .values(
                            status="started",
                            reason=event["reason"],
                            run_id=run_id,
                            handled_at=stamp,
                        )  # fmt: skip
                    )
        except _Taken:
            return False
        return True

    def last_launch(self, source: str) -> dt.datetime | None:
        """When `source` (e.g. `trigger:NAME`) last claimed a run (for cooldowns)."""
        c = t.launches.c
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(c.created_at)).where(c.source == source)).scalar()

    def launch_busy(self, source: str) -> bool:
        """Whether a launch of `source` is waiting to start or running."""
        c = t.launches.c
        stmt = select(c.run_id).where(
            and_(c.source == source, c.status.in_(["pending", "launched"]))
        )
        with self.engine.connect() as conn:
            return conn.execute(stmt.limit(1)).first() is not None

    def launches(self, statuses: Iterable[str], limit: int = 1000) -> list[dict[str, Any]]:
        """Launches in these states, oldest first."""
        c = t.launches.c
        stmt = (
            select(t.launches)
            .where(c.status.in_(list(statuses)))
            .order_by(c.created_at, c.run_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def set_launch(
        self, run_id: str, status: str, *, error: str | None = None,
        owner: str | None = None, expect: dict[str, str] | None = None,
    ) -> bool:  # fmt: skip
        """Move a launch to `status` (and `owner`); with `expect`, only if its columns still
        hold those values (compare-and-set). True if the row changed."""
        c = t.launches.c
        values: dict[str, Any] = {"status": status, "updated_at": now()}
        if error is not None:
            values["error"] = error
        if owner is not None:
            values["owner"] = owner
        cond = [c.run_id == run_id] + [c[k] == v for k, v in (expect or {}).items()]
        with self.tx() as conn:
            return bool(conn.execute(update(t.launches).where(and_(*cond)).values(values)).rowcount)

    def existing_runs(self, run_ids: Iterable[str]) -> dict[str, str]:
        """{run id: status} of those of `run_ids` that exist."""
        ids = list(run_ids)
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.runs.c.id, t.runs.c.status).where(t.runs.c.id.in_(ids)))
            return {r.id: r.status for r in rows}

    def claim_owner(self, kind: str, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.claims.c.owner).where(and_(t.claims.c.kind == kind, t.claims.c.key == key))
            ).scalar()

    # -- schedules ----------------------------------------------------------------------
    def schedule_state(self, name: str) -> dict[str, Any]:
        """`{"cursor": datetime | None, "paused": bool}` of a schedule (defaults if unseen)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.schedule_state).where(t.schedule_state.c.name == name)
            ).first()
        if row is None:
            return {"cursor": None, "paused": False}
        return {"cursor": row.cursor, "paused": bool(row.paused)}

    def set_schedule_state(self, name: str, **values: Any) -> None:
        """Set `cursor` and/or `paused` of a schedule (a cursor only ever moves forward)."""
        c = t.schedule_state.c
        with self.tx() as conn:
            row = conn.execute(select(t.schedule_state).where(c.name == name)).first()
            if row is None:
                row_values = {"cursor": None, "paused": False} | values
                conn.execute(
                    insert(t.schedule_state).values(name=name, updated_at=now(), **row_values)
                )
                return
            if (
                values.get("cursor") is not None
                and row.cursor is not None
                and values["cursor"] <= row.cursor
            ):
                values.pop("cursor")
            if values:
                conn.execute(
                    update(t.schedule_state)
                    .where(c.name == name)
                    .values(updated_at=now(), **values)
                )

    def schedule_running(self, name: str) -> bool:
        """Whether a run started by this schedule is still going."""
        rows = self.list_runs(limit=20, status=RunStatus.RUNNING)
        return any((r.get("trigger") or {}).get("schedule") == name for r in rows)

    # -- events -------------------------------------------------------------------------
    def emit_event(
        self,
        name: str,
        data: dict[str, Any],
        source: str = "cli",
        idempotency_key: str | None = None,
    ) -> tuple[int, bool]:
        """Record an event durably; returns (id, new). A repeated idempotency key returns the
        first event's id and `new=False` instead of recording a duplicate."""
        row = {
            "name": name,
            "data": canonical_json(data),
            "source": source,
            "idempotency_key": idempotency_key,
            "status": "pending",
            "created_at": now(),
        }
        try:
            with self.tx() as conn:
                if idempotency_key is not None:
                    got = conn.execute(
                        select(t.events.c.id).where(t.events.c.idempotency_key == idempotency_key)
                    ).scalar()
                    if got is not None:
                        return int(got), False
                new_id = conn.execute(insert(t.events).values(row).returning(t.events.c.id))
                return int(new_id.scalar_one()), True
        except IntegrityError:  # the same key, recorded by a concurrent caller
            with self.engine.connect() as conn:
                got = conn.execute(
                    select(t.events.c.id).where(t.events.c.idempotency_key == idempotency_key)
                ).scalar_one()
            return int(got), False
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot record event '{name}': {first_line(exc)}") from None

    def pending_events(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.events)
                .where(t.events.c.status == "pending")
                .order_by(t.events.c.id)
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]

    def handle_event(
        self, event_id: int, status: str, reason: str, run_id: str | None = None
    ) -> None:
        with self.tx() as conn:
            conn.execute(
                update(t.events)
                .where(t.events.c.id == event_id)
                .values(status=status, reason=reason, run_id=run_id, handled_at=now())
            )

    def list_events(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.events).order_by(t.events.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    def record_check(self, **row: Any) -> int:
        """Record one drift or metric check (columns of `monitor_checks`); returns its id."""
        row = {"created_at": now(), **row}
        with self.tx() as conn:
            got = conn.execute(
                insert(t.monitor_checks).values(row).returning(t.monitor_checks.c.id)
            )
            return int(got.scalar_one())

    def monitor_checks(self, limit: int = 50, monitor: str | None = None) -> list[dict[str, Any]]:
        """The newest checks first, of one monitor or of all."""
        c = t.monitor_checks.c
        stmt = select(t.monitor_checks).order_by(c.id.desc()).limit(limit)
        if monitor is not None:
            stmt = stmt.where(c.monitor == monitor)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def monitor_check(self, check_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.monitor_checks).where(t.monitor_checks.c.id == check_id)
            ).first()
        return None if row is None else dict(row._mapping)

    def monitor_position(self, monitor: str, source: str) -> int:
        """Where the last check of `monitor` on `source` stopped reading (0 if none)."""
        c = t.monitor_checks.c
        with self.engine.connect() as conn:
            got = conn.execute(
                select(func.max(c.position)).where(and_(c.monitor == monitor, c.source == source))
            ).scalar()
        return int(got or 0)

    # -- reads --------------------------------------------------------------------------
    def _refresh_stale(self, rows: list[dict[str, Any]]) -> None:
        """A run marked running whose process on this host is gone was interrupted."""
        for r in rows:
            if (
                r["status"] == RunStatus.RUNNING
                and r["host"] == self._host
                and r["pid"]
                and not _alive(r["pid"], r["started_at"])
            ):
                self.finish_run(r["id"], RunStatus.INTERRUPTED, "the runner process died")
                r["status"] = RunStatus.INTERRUPTED

    def list_runs(
        self, limit: int = 20, pipeline: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        q = select(t.runs).order_by(t.runs.c.started_at.desc()).limit(limit)
        if pipeline:
            q = q.where(t.runs.c.pipeline == pipeline)
        if status:
            q = q.where(t.runs.c.status == status)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
            counts = conn.execute(
                select(t.step_runs.c.run_id, t.step_runs.c.state, func.count())
                .where(t.step_runs.c.run_id.in_([r["id"] for r in rows]))
                .group_by(t.step_runs.c.run_id, t.step_runs.c.state)
            ).all()
        self._refresh_stale(rows)
        for r in rows:
            r["counts"] = {s: n for rid, s, n in counts if rid == r["id"]}
        return rows

    def get_run(self, run_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.runs).where(t.runs.c.id.startswith(run_id, autoescape=True)).limit(2)
            ).all()
        if not rows:
            raise NotFound(f"no run '{run_id}' (see `orch runs`)")
        if len(rows) > 1:
            raise NotFound(f"run id prefix '{run_id}' is ambiguous; give more characters")
        run = dict(rows[0]._mapping)
        self._refresh_stale([run])
        return run

    def step_runs(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.step_runs).where(t.step_runs.c.run_id == run_id).order_by(t.step_runs.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def referenced_artifacts(self, keep_runs: int | None = None) -> set[str]:
        """Hashes referenced by kept runs' step runs, the cache index and model versions."""
        refs: set[str] = set()
        with self.engine.connect() as conn:
            run_q = select(t.runs.c.id).order_by(t.runs.c.started_at.desc())
            if keep_runs is not None:
                run_q = run_q.limit(keep_runs)
            kept = [r.id for r in conn.execute(run_q)]
            for i in range(0, len(kept), 500):
                for (outs,) in conn.execute(
                    select(t.step_runs.c.outputs).where(t.step_runs.c.run_id.in_(kept[i : i + 500]))
                ):
                    refs.update(o["hash"] for o in outs or [])
            versions = select(t.model_versions.c.artifact_hash, t.model_versions.c.data_hash)
            for model_hash, data_hash in conn.execute(versions):
                refs.add(model_hash)
                if data_hash:  # a drift monitor's reference
                    refs.add(data_hash)
            reports = select(t.monitor_checks.c.report_hash)
            refs.update(h for (h,) in conn.execute(reports) if h)
        return refs

    def prune_cache(self, keep: set[str]) -> int:
        """Drop cache entries whose outputs are not all kept; return how many."""
        with self.tx() as conn:
            drop = [
                r.cache_key
                for r in conn.execute(
                    select(t.cache_entries.c.cache_key, t.cache_entries.c.outputs)
                )
                if not all(o["hash"] in keep for o in r.outputs)
            ]
            for i in range(0, len(drop), 500):
                conn.execute(
                    delete(t.cache_entries).where(
                        t.cache_entries.c.cache_key.in_(drop[i : i + 500])
                    )
                )
            doomed = [h for (h,) in conn.execute(select(t.artifacts.c.hash)) if h not in keep]
            for i in range(0, len(doomed), 500):
                conn.execute(delete(t.artifacts).where(t.artifacts.c.hash.in_(doomed[i : i + 500])))
        return len(drop)


class _HeldConnection:
    """The engine thread's connection on databases other than SQLite, held for the run."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.conn = store.engine.connect()

    def write(self, batch: Batch) -> None:
        with self.conn.begin():
            self.store.write_rows(self.conn, batch)

    def cache_get(self, key: str) -> dict[str, Any] | None:
        try:
            return self.store.cache_row(self.conn, key)
        finally:
            self.conn.rollback()  # end the read's implicit transaction

    def history(self, pipeline: str, step: str, limit: int) -> list[dict[str, Any]]:
        try:
            return self.store.history_rows(self.conn, pipeline, step, limit)
        finally:
            self.conn.rollback()

    def close(self) -> None:
        self.conn.close()


_STEP_COLS = tuple(c.name for c in t.step_runs.columns if c.name != "id")


def _full_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {c: row.get(c) for c in _STEP_COLS}
    if out["attempts"] is None:
        out["attempts"] = 0
    return out


def _alive(pid: int, started_at: dt.datetime) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.create_time() <= started_at.timestamp() + 1
    except psutil.Error:
        return False
