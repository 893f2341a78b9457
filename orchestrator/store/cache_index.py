"""The cache index: cache key -> the outputs (artifact references) and run that made them.

An entry is written once, with the batch of the step that made it, and never changed
(a key is content-derived, so a second writer of the same key writes the same entry
and is skipped). `history` is what `explain` compares a new key with: a step's newest
entries, returned oldest first. `rows_many` and `histories_rows` are the same reads for
many keys and steps at once (a mapped step's children): one statement per `CHUNK` of
them, so SQL stays within every database's limit on bound parameters.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, and_, bindparam, delete, func, select

from orchestrator.store import schema as t
from orchestrator.store.base import Db, Row

CHUNK = 500  # keys or steps per statement of a many-row read


class CacheIndex:
    def __init__(self, db: Db) -> None:
        self.db = db
        self._get = select(t.cache_entries.c.outputs, t.cache_entries.c.run_id).where(
            t.cache_entries.c.cache_key == bindparam("key")
        )

    def get(self, key: str) -> Row | None:
        """The cache entry for a key (outputs and run id), or None."""
        with self.db.read() as conn:
            return self.row(conn, key)

    def row(self, conn: Connection, key: str) -> Row | None:
        row = conn.execute(self._get, {"key": key}).first()
        return None if row is None else {"cache_key": key, "outputs": row[0], "run_id": row[1]}

    def history(self, pipeline: str, step: str, limit: int = 50) -> list[Row]:
        """A step's most recent cache entries, oldest first."""
        with self.db.read() as conn:
            return self.history_rows(conn, pipeline, step, limit)

    def history_rows(self, conn: Connection, pipeline: str, step: str, limit: int) -> list[Row]:
        c = t.cache_entries.c
        rows = conn.execute(
            select(t.cache_entries)
            .where(and_(c.pipeline == pipeline, c.step == step))
            .order_by(c.created_at.desc())
            .limit(limit)
        )
        return [dict(r._mapping) for r in rows][::-1]

    def rows_many(self, conn: Connection, keys: list[str]) -> dict[str, Row]:
        """The entries of those of `keys` that have one, by key."""
        c = t.cache_entries.c
        out: dict[str, Row] = {}
        for i in range(0, len(keys), CHUNK):
            q = select(c.cache_key, c.outputs, c.run_id).where(c.cache_key.in_(keys[i : i + CHUNK]))
            for key, outputs, run_id in conn.execute(q):
                out[key] = {"cache_key": key, "outputs": outputs, "run_id": run_id}
        return out

    def histories_rows(
        self, conn: Connection, pipeline: str, steps: list[str], limit: int
    ) -> dict[str, list[Row]]:
        """`history_rows` of each of `steps` (those with none are absent)."""
        c = t.cache_entries.c
        out: dict[str, list[Row]] = {}
        for i in range(0, len(steps), CHUNK):
            newest = func.row_number().over(partition_by=c.step, order_by=c.created_at.desc())
            inner = (
                select(t.cache_entries, newest.label("newest"))
                .where(and_(c.pipeline == pipeline, c.step.in_(steps[i : i + CHUNK])))
                .subquery()
            )
            cols = [inner.c[col.name] for col in t.cache_entries.columns]
            q = select(*cols).where(inner.c.newest <= limit).order_by(inner.c.newest.desc())
            for r in conn.execute(q):
                row = dict(r._mapping)
                out.setdefault(row["step"], []).append(row)
        return out

    def drop(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            with self.db.tx() as conn:
                conn.execute(delete(t.cache_entries).where(t.cache_entries.c.cache_key.in_(keys)))
