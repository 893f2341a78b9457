"""Claims and launches: how daemons share work without doing it twice.

A claim `(kind, key)` (a schedule tick, an event for a trigger, a file for a sensor) is
granted to exactly one caller, ever: the primary key decides, not a read before the
write. A launch is the run a claim starts, recorded in the same transaction as its
claims (and, for an event, the event's `started` record), so claims and launch exist
together or not at all. A launch moves `pending` -> `launched` -> `done`/`failed`;
`set_launch(..., expect=...)` is a compare-and-set, so one daemon alone takes a launch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from orchestrator.store import schema as t
from orchestrator.store.base import Db, Row, now


class _Taken(Exception):
    """An item of work another caller holds (rolls the claim transaction back)."""


class ClaimRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    def claim(self, kind: str, key: str, owner: str) -> bool:
        """Take one item of shared work; True for exactly one caller."""
        with self.db.tx() as conn:
            return self._claim_in(
                conn, {"kind": kind, "key": key, "owner": owner, "claimed_at": now()}
            )

    def _claim_in(self, conn: Connection, row: Row) -> bool:
        stmt = self.db.insert_ignore(t.claims)
        if stmt is not None:
            return conn.execute(stmt.values(row).returning(t.claims.c.key)).first() is not None
        try:
            with conn.begin_nested():
                conn.execute(insert(t.claims), row)
            return True
        except IntegrityError:
            return False

    def claim_launch(
        self, claims: list[tuple[str, str]], owner: str, *, run_id: str, source: str,
        args: list[str], status: str, event: dict[str, Any] | None,
    ) -> bool:  # fmt: skip
        """Claim items (kind, key) and record the launch they start, all or nothing."""
        stamp = now()
        try:
            with self.db.tx() as conn:
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

    def owner(self, kind: str, key: str) -> str | None:
        c = t.claims.c
        with self.db.read() as conn:
            return conn.execute(select(c.owner).where(and_(c.kind == kind, c.key == key))).scalar()

    def last_launch(self, source: str) -> dt.datetime | None:
        """When `source` (e.g. `trigger:NAME`) last claimed a run (for cooldowns)."""
        c = t.launches.c
        with self.db.read() as conn:
            return conn.execute(select(func.max(c.created_at)).where(c.source == source)).scalar()

    def launch_busy(self, source: str) -> bool:
        """Whether a launch of `source` is waiting to start or running."""
        c = t.launches.c
        stmt = select(c.run_id).where(
            and_(c.source == source, c.status.in_(["pending", "launched"]))
        )
        with self.db.read() as conn:
            return conn.execute(stmt.limit(1)).first() is not None

    def launches(self, statuses: Iterable[str], limit: int = 1000) -> list[Row]:
        """Launches in these states, oldest first."""
        c = t.launches.c
        stmt = (
            select(t.launches)
            .where(c.status.in_(list(statuses)))
            .order_by(c.created_at, c.run_id)
            .limit(limit)
        )
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def set_launch(
        self, run_id: str, status: str, *, error: str | None, owner: str | None,
        expect: dict[str, str] | None,
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
        with self.db.tx() as conn:
            return bool(conn.execute(update(t.launches).where(and_(*cond)).values(values)).rowcount)
