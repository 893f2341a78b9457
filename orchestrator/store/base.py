"""What every repository of the metadata store shares: one `Db` handle.

`Db` owns the SQLAlchemy engine, the dialect's name, this host's name and whether the
store was opened read-only. Invariants: every write goes through `Db.tx()` (one
transaction, on SQLite holding the write lock from BEGIN), and on a read-only store
`tx()` refuses with one `StoreError` naming the database before any statement runs, so
no write half-happens. Reads use `Db.read()` (a plain connection). Times are aware UTC
(`now()`); JSON columns hold canonical JSON (`canonical_json`).

The engine may be made on first use (`Db.lazy`): a cached run on a SQLite store at the
schema head goes through the raw sqlite3 path and never needs one, nor SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from orchestrator.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Table

Row = dict[str, Any]


def canonical_json(data: dict[str, Any]) -> dict[str, Any]:
    from orchestrator.cache.hashing import canonical

    return dict(canonical(data))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def run_rows(
    host: str, run_id: str, pipeline: str, target: str, params: dict[str, Any], executor: str,
    resumed_from: str | None, trigger: dict[str, Any] | None,
) -> tuple[Row, Row]:  # fmt: skip
    """A new running run's rows: the pipeline's (name -> how to load it) and the run's."""
    import os

    from orchestrator.state import RunStatus

    stamp = now()
    run = {
        "id": run_id, "pipeline": pipeline, "target": target,
        "status": RunStatus.RUNNING, "params": params, "executor": executor,
        "started_at": stamp, "host": host, "pid": os.getpid(),
        "resumed_from": resumed_from, "trigger": trigger or {"kind": "manual"},
    }  # fmt: skip
    return {"name": pipeline, "ref": target, "updated_at": stamp}, run


@dataclasses.dataclass
class Db:
    """The engine and the facts about it that repositories need."""

    _engine: Engine | None
    host: str
    readonly: bool = False
    where: str = ""  # the database, as error messages name it
    why: str = ""  # why it is read-only, if it is
    _ignoring: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    _make: Callable[[], Engine] | None = dataclasses.field(default=None, repr=False)
    _dialect: str = ""
    opener: Callable[[], Any] | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def lazy(
        cls, make: Callable[[], Engine], dialect: str, host: str, readonly: bool = False,
        where: str = "", why: str = "", opener: Callable[[], Any] | None = None,
    ) -> Db:  # fmt: skip
        """A handle whose engine `make()` makes when first used, its dialect known;
        `opener()`, if given, opens a raw DB-API connection without an engine."""
        return cls(None, host, readonly, where, why, _make=make, _dialect=dialect, opener=opener)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            assert self._make is not None
            self._engine = self._make()
        return self._engine

    @property
    def has_engine(self) -> bool:
        return self._engine is not None

    @property
    def dialect(self) -> str:
        if self._engine is None and self._dialect:
            return self._dialect
        return self.engine.dialect.name

    def refuse_writes(self) -> None:
        if self.readonly:
            raise StoreError(
                f"the metadata store {self.where} is read-only ({self.why or 'opened so'}): "
                "this command records something and cannot run here (reading commands "
                "such as `orch runs` work)"
            )

    @contextlib.contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it takes the write lock at BEGIN)."""
        self.refuse_writes()
        with self.engine.connect().execution_options(orch_write=True) as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dialect_insert(self, table: Table) -> Any:
        """The dialect's `insert` (with `on_conflict_do_*`) on sqlite and postgresql, else None."""
        if self.dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table)
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        return None

    def insert_ignore(self, table: Table) -> Any:
        """`INSERT ... ON CONFLICT DO NOTHING` where the dialect has it, else None."""
        stmt = self.dialect_insert(table)
        return None if stmt is None else stmt.on_conflict_do_nothing()

    def insert_ignored(self, conn: Connection, table: Table, rows: list[Row]) -> None:
        """Insert `rows`, skipping those whose key is there already."""
        if not rows:
            return
        if table.name not in self._ignoring:
            self._ignoring[table.name] = self.insert_ignore(table)
        stmt = self._ignoring[table.name]
        if stmt is not None:
            conn.execute(stmt, rows)
            return
        from sqlalchemy import insert
        from sqlalchemy.exc import IntegrityError

        for row in rows:  # portable fallback
            try:
                with conn.begin_nested():
                    conn.execute(insert(table), row)
            except IntegrityError:
                pass
