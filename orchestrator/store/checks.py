"""Monitor checks: one row per drift or metric check a monitor made.

A check records what it read (`source`, up to `position`), what it found (`drifted`,
`value`, `summary`) and, for drift, the report artifact (`report_hash`, which garbage
collection keeps). Rows are only ever added; the newest check of a monitor on a source
says where the next one starts reading.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, insert, select

from orchestrator.store import schema as t
from orchestrator.store.base import Db, Row, now


class CheckRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    def record(self, **row: Any) -> int:
        """Record one check (columns of `monitor_checks`); returns its id."""
        row = {"created_at": now(), **row}
        with self.db.tx() as conn:
            got = conn.execute(
                insert(t.monitor_checks).values(row).returning(t.monitor_checks.c.id)
            )
            return int(got.scalar_one())

    def list(self, limit: int = 50, monitor: str | None = None) -> list[Row]:
        """The newest checks first, of one monitor or of all."""
        c = t.monitor_checks.c
        stmt = select(t.monitor_checks).order_by(c.id.desc()).limit(limit)
        if monitor is not None:
            stmt = stmt.where(c.monitor == monitor)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def get(self, check_id: int) -> Row | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(t.monitor_checks).where(t.monitor_checks.c.id == check_id)
            ).first()
        return None if row is None else dict(row._mapping)

    def position(self, monitor: str, source: str) -> int:
        """Where the last check of `monitor` on `source` stopped reading (0 if none)."""
        c = t.monitor_checks.c
        with self.db.read() as conn:
            got = conn.execute(
                select(func.max(c.position)).where(and_(c.monitor == monitor, c.source == source))
            ).scalar()
        return int(got or 0)
