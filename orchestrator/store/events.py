"""Events: named occurrences with JSON data that event triggers turn into runs.

An event is recorded `pending` and durably before anyone acts on it; a daemon moves it
to `started` (with the run it started, in the launch's transaction, store/claims.py) or
to another status with a reason (`handle`). An idempotency key records at most one
event: a repeat, even from a concurrent caller, returns the first event's id.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from orchestrator.errors import StoreError
from orchestrator.store import schema as t
from orchestrator.store.base import Db, Row, canonical_json, now
from orchestrator.store.db import first_line


class EventRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    def emit(
        self, name: str, data: dict[str, Any], source: str, idempotency_key: str | None
    ) -> tuple[int, bool]:
        """Record an event; returns (id, new)."""
        self.db.refuse_writes()
        row = {
            "name": name, "data": canonical_json(data), "source": source,
            "idempotency_key": idempotency_key, "status": "pending", "created_at": now(),
        }  # fmt: skip
        try:
            with self.db.tx() as conn:
                if idempotency_key is not None:
                    got = self._by_key(conn, idempotency_key)
                    if got is not None:
                        return got, False
                new_id = conn.execute(insert(t.events).values(row).returning(t.events.c.id))
                return int(new_id.scalar_one()), True
        except IntegrityError:  # the same key, recorded by a concurrent caller
            with self.db.read() as conn:
                return int(self._by_key(conn, idempotency_key or "") or 0), False
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot record event '{name}': {first_line(exc)}") from None

    @staticmethod
    def _by_key(conn: Any, key: str) -> int | None:
        got = conn.execute(select(t.events.c.id).where(t.events.c.idempotency_key == key))
        value = got.scalar()
        return None if value is None else int(value)

    def pending(self, limit: int = 100) -> list[Row]:
        q = select(t.events).where(t.events.c.status == "pending").order_by(t.events.c.id)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q.limit(limit))]

    def handle(self, event_id: int, status: str, reason: str, run_id: str | None) -> None:
        with self.db.tx() as conn:
            conn.execute(
                update(t.events)
                .where(t.events.c.id == event_id)
                .values(status=status, reason=reason, run_id=run_id, handled_at=now())
            )

    def list(self, limit: int = 50) -> list[Row]:
        with self.db.read() as conn:
            rows = conn.execute(select(t.events).order_by(t.events.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]
