"""Schedule state: each schedule's cursor (the last tick handled) and whether it is paused.

Invariants: a cursor only ever moves forward; one row per schedule, written by one
upsert (`INSERT ... ON CONFLICT (name) DO UPDATE` on SQLite and PostgreSQL), so two
daemons meeting a schedule neither has seen both succeed and the later cursor wins.
A schedule is running while a run its trigger names is still going: a run whose process
died is recorded interrupted and does not count (store/runs.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, insert, or_, select, update

from orchestrator.store import schema as t
from orchestrator.store.base import Db, Row, now
from orchestrator.store.runs import RunRepository


class ScheduleRepository:
    def __init__(self, db: Db, runs: RunRepository) -> None:
        self.db, self.runs = db, runs

    def state(self, name: str) -> dict[str, Any]:
        """`{"cursor": datetime | None, "paused": bool}` of a schedule (defaults if unseen)."""
        with self.db.read() as conn:
            row = conn.execute(
                select(t.schedule_state).where(t.schedule_state.c.name == name)
            ).first()
        if row is None:
            return {"cursor": None, "paused": False}
        return {"cursor": row.cursor, "paused": bool(row.paused)}

    def states(self) -> dict[str, Row]:
        """Every recorded schedule's row, by name."""
        with self.db.read() as conn:
            return {r.name: dict(r._mapping) for r in conn.execute(select(t.schedule_state))}

    def set_state(self, name: str, **values: Any) -> None:
        """Set `cursor` and/or `paused` of a schedule (a cursor only ever moves forward)."""
        stmt = self.db.dialect_insert(t.schedule_state)
        if stmt is None:
            self._check_then_write(name, values)
            return
        row = {"cursor": None, "paused": False} | values | {"name": name, "updated_at": now()}
        stmt = stmt.values(row)
        c, new = t.schedule_state.c, stmt.excluded
        changes: dict[str, Any] = {"updated_at": new.updated_at}
        if values.get("cursor") is not None:
            forward = and_(new.cursor.is_not(None), or_(c.cursor.is_(None), new.cursor > c.cursor))
            changes["cursor"] = case((forward, new.cursor), else_=c.cursor)
        if "paused" in values:
            changes["paused"] = new.paused
        with self.db.tx() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=[c.name], set_=changes))

    def _check_then_write(self, name: str, values: dict[str, Any]) -> None:
        """The portable path, for databases without an upsert."""
        c = t.schedule_state.c
        with self.db.tx() as conn:
            row = conn.execute(select(t.schedule_state).where(c.name == name)).first()
            if row is None:
                fresh = {"cursor": None, "paused": False} | values
                conn.execute(insert(t.schedule_state).values(name=name, updated_at=now(), **fresh))
                return
            cursor = values.get("cursor")
            if cursor is not None and row.cursor is not None and cursor <= row.cursor:
                values.pop("cursor")
            if values:
                stmt = update(t.schedule_state).where(c.name == name)
                conn.execute(stmt.values(updated_at=now(), **values))

    def running(self, name: str) -> bool:
        """Whether a run started by this schedule is still going."""
        return bool(self.runs.running_by_trigger("schedule", name))
