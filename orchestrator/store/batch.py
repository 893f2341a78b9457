"""The rows the engine writes: a `Batch` per scheduling round, and the writer of batches.

A `Batch` holds every state change of one round (step-run inserts and updates, attempt
inserts and updates, new artifacts, new cache entries, and plain inserts into other
tables: what steps tracked); `BatchWriter.write` records it in one transaction, so a
finished step is durable before any step that depends on it starts. Artifacts and cache
entries are content-keyed: a row already there is skipped, never an error. The hot path
(`hot()`) is raw sqlite3 on SQLite (store/fastpath.py), one pipelined psycopg connection
on PostgreSQL (store/pgpath.py: one round trip per batch and per cache lookup) and one
held SQLAlchemy connection elsewhere; each writes exactly the rows the portable path
writes.

Nothing here loads SQLAlchemy until a portable statement is needed: on SQLite the hot
path writes every batch of a run.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import sys
from typing import TYPE_CHECKING, Any

from orchestrator.errors import StoreError
from orchestrator.store import borrowed
from orchestrator.store.base import Db, Row
from orchestrator.store.columns import ATTEMPT_COLS, ATTEMPT_UPDATE_COLS, STEP_COLS, UPDATE_COLS
from orchestrator.store.db import first_line

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from orchestrator.store.cache_index import CacheIndex

__all__ = ["ATTEMPT_COLS", "ATTEMPT_UPDATE_COLS", "STEP_COLS", "UPDATE_COLS", "Batch"]


@dataclasses.dataclass
class Batch:
    """State changes gathered during one scheduling round, written in one transaction."""

    step_inserts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    step_updates: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    cache_entries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    attempt_inserts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    attempt_updates: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    rows: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def add(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Plain inserts into `table` (the tracking tables), written with the batch."""
        if rows:
            self.rows.setdefault(table, []).extend(rows)

    def __bool__(self) -> bool:
        return bool(
            self.step_inserts
            or self.step_updates
            or self.artifacts
            or self.cache_entries
            or self.attempt_inserts
            or self.attempt_updates
            or self.rows
        )


def db_errors() -> tuple[type[BaseException], ...]:
    """The errors a write may raise: sqlite3's, and SQLAlchemy's once it is loaded (until
    then nothing can raise them)."""
    exc = sys.modules.get("sqlalchemy.exc")
    return (sqlite3.Error,) if exc is None else (sqlite3.Error, exc.SQLAlchemyError)


def full_row(row: Row) -> Row:
    out = {c: row.get(c) for c in STEP_COLS}
    if out["attempts"] is None:
        out["attempts"] = 0
    return out


class BatchWriter:
    """Writes batches, through the portable path or the hot path."""

    def __init__(self, db: Db, cache: Any) -> None:
        """`cache`: the `CacheIndex`, or a callable giving it when first needed."""
        self.db, self._cache = db, cache
        self._statements: tuple[Any, Any, Any] | None = None
        self._hot: Any = None

    @property
    def cache(self) -> CacheIndex:
        if callable(self._cache):
            self._cache = self._cache()
        return self._cache  # type: ignore[no-any-return]

    def _portable(self) -> tuple[Any, Any, Any]:
        """The portable path's statements (built once, when first needed)."""
        if self._statements is None:
            self._statements = self._build()
        return self._statements

    def _build(self) -> tuple[Any, Any, Any]:
        from sqlalchemy import and_, bindparam, insert, update

        from orchestrator.store import schema as t

        insert_step = insert(t.step_runs)
        update_step = (
            update(t.step_runs)
            .where(
                and_(
                    t.step_runs.c.run_id == bindparam("_run"),
                    t.step_runs.c.name == bindparam("_name"),
                )
            )
            .values({c: bindparam(c) for c in UPDATE_COLS})
        )
        a = t.attempts.c
        update_attempt = (
            update(t.attempts)
            .where(
                and_(
                    a.run_id == bindparam("_run"),
                    a.step == bindparam("_step"),
                    a.attempt == bindparam("_attempt"),
                )
            )
            .values({c: bindparam(c) for c in ATTEMPT_UPDATE_COLS})
        )
        return insert_step, update_step, update_attempt

    def hot(self) -> Any:
        """The engine thread's hot path: raw sqlite3 on SQLite, pipelined psycopg on
        PostgreSQL, else one held connection (no pool checkout and liveness ping per
        statement)."""
        if self._hot is None:
            self._hot = self._make_hot()
        return self._hot

    def _make_hot(self) -> Any:
        if self.db.dialect == "sqlite":
            from orchestrator.store.fastpath import SqliteFastPath

            if self.db.has_engine:
                return SqliteFastPath(self.db.engine, STEP_COLS, UPDATE_COLS)
            return SqliteFastPath(None, STEP_COLS, UPDATE_COLS, opener=self.db.opener)
        if self.db.dialect == "postgresql" and self.db.engine.dialect.driver == "psycopg":
            from orchestrator.store import pgpath

            if pgpath.supported(self.db.engine):
                return pgpath.PostgresFastPath(self.db.engine, STEP_COLS, UPDATE_COLS)
        return HeldConnection(self)

    def settle(self) -> None:
        """Wait for the batches the hot path sent and did not wait for (PostgreSQL's)."""
        settle = getattr(self._hot, "settle", None)
        if settle is not None:
            settle()

    def close(self) -> None:
        if self._hot is not None:
            self._hot.close()
            self._hot = None

    def write(self, batch: Batch, fast: bool = False) -> None:
        """Record a batch in one transaction (`fast`: through the hot path)."""
        if not batch:
            return
        self.db.refuse_writes()
        try:
            if fast:
                batch.step_inserts = [  # the hot paths read absent columns as NULL
                    r if r.get("attempts") is not None else full_row(r) for r in batch.step_inserts
                ]
                self.hot().write(batch)
                return
            with self.db.tx() as conn:
                self.write_rows(conn, batch)
        except db_errors() as exc:
            raise StoreError(f"cannot record step states: {first_line(exc)}") from None

    def write_rows(self, conn: Connection, batch: Batch) -> None:
        """A batch's statements, in the caller's transaction (the portable path)."""
        from sqlalchemy import insert, text

        from orchestrator.store import schema as t

        insert_step, update_step, update_attempt = self._portable()
        if batch.step_inserts:
            cached = self.db.dialect == "sqlite" and borrowed.any_cached(batch.step_inserts)
            if cached:
                last = conn.exec_driver_sql(borrowed.SQLITE_LAST_ID).scalar_one()
            conn.execute(insert_step, [full_row(r) for r in batch.step_inserts])
            if cached:
                conn.exec_driver_sql(borrowed.SQLITE_BORROWED, (last,))
            elif self.db.dialect == "postgresql":
                doc = borrowed.pg_document(batch.step_inserts)
                if doc is not None:
                    conn.execute(text(borrowed.PG_BORROWED_PORTABLE), {"doc": doc})
        if batch.step_updates:
            rows = [
                {c: r.get(c) for c in UPDATE_COLS} | {"_run": r["run_id"], "_name": r["name"]}
                for r in batch.step_updates
            ]
            conn.execute(update_step, rows)
        if batch.attempt_inserts:
            rows = [{c: r.get(c) for c in ATTEMPT_COLS} for r in batch.attempt_inserts]
            conn.execute(insert(t.attempts), rows)
        if batch.attempt_updates:
            conn.execute(update_attempt, [attempt_key(r) for r in batch.attempt_updates])
        self.db.insert_ignored(conn, t.artifacts, list(batch.artifacts.values()))
        self.db.insert_ignored(conn, t.cache_entries, batch.cache_entries)
        for name, rows in batch.rows.items():
            conn.execute(insert(t.metadata.tables[name]), rows)


def attempt_key(row: Row) -> Row:
    """An attempt update's values, with the key of the row it updates."""
    values = {c: row.get(c) for c in ATTEMPT_UPDATE_COLS}
    return values | {"_run": row["run_id"], "_step": row["step"], "_attempt": row["attempt"]}


class HeldConnection:
    """The engine thread's connection on databases other than SQLite, held for the run."""

    def __init__(self, writer: BatchWriter) -> None:
        self.writer = writer
        self.conn = writer.db.engine.connect()

    def write(self, batch: Batch) -> None:
        with self.conn.begin():
            self.writer.write_rows(self.conn, batch)

    def cache_get(self, key: str) -> Row | None:
        try:
            return self.writer.cache.row(self.conn, key)
        finally:
            self.conn.rollback()  # end the read's implicit transaction

    def history(self, pipeline: str, step: str, limit: int) -> list[Row]:
        try:
            return self.writer.cache.history_rows(self.conn, pipeline, step, limit)
        finally:
            self.conn.rollback()

    def probe(
        self, key: str, pipeline: str, step: str, limit: int
    ) -> tuple[Row | None, list[Row] | None]:
        entry = self.cache_get(key)
        return (entry, None) if entry else (None, self.history(pipeline, step, limit))

    def cache_many(self, keys: list[str]) -> dict[str, Row]:
        try:
            return self.writer.cache.rows_many(self.conn, keys)
        finally:
            self.conn.rollback()

    def histories(self, pipeline: str, steps: list[str], limit: int) -> dict[str, list[Row]]:
        try:
            return self.writer.cache.histories_rows(self.conn, pipeline, steps, limit)
        finally:
            self.conn.rollback()

    def prefetch(self, pipeline: str, steps: list[str], eager: bool = False) -> dict[str, Row]:
        return {}

    def close(self) -> None:
        self.conn.close()
