"""The engine's hot path on SQLite: one held DB-API connection, prepared SQL, no ORM layer.

Per scheduling round the engine writes a batch (step-run and attempt inserts and
updates, artifacts, cache entries) and, per ready step, looks up one cache key. Through
SQLAlchemy Core each statement costs tens of microseconds of Python before SQLite sees
it; here it costs a few. A run's creation and its end go this way too (the rows and
rules of store/runs.py). Values are encoded exactly as the SQLAlchemy column types
encode them (JSON text, naive-UTC `YYYY-MM-DD HH:MM:SS.ffffff`), so both paths read each
other's rows. Other databases use the portable SQLAlchemy path in `batch.py`.

The connection is an engine's (a pool checkout, its connect hooks applied) or, on a
store opened without an engine, one `store.db.open_sqlite` opened the same way: the
column lists come from store/columns.py, so this path never loads SQLAlchemy itself.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from typing import Any

from orchestrator.errors import StoreError
from orchestrator.state import RunStatus, StepState
from orchestrator.store import absent, borrowed, checkpoint
from orchestrator.store.absent import AbsentSteps
from orchestrator.store.base import now
from orchestrator.store.columns import (
    ATTEMPT_UPDATE_COLS,
    CHUNK,
    JSON_COLS,
    TABLE_COLS,
    TIME_COLS,
)
from orchestrator.store.db import first_line

_JSON = JSON_COLS
_TIME = TIME_COLS


def _time(v: Any) -> Any:
    if v is None:
        return None
    if v.tzinfo is dt.UTC:
        v = v.replace(tzinfo=None)
    elif v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    return v.isoformat(" ", "microseconds")


_dumps = json.JSONEncoder().encode  # what json.dumps(v) calls, without its argument checks


class StoredJson(list):  # type: ignore[type-arg]
    """A JSON list read from a row, carrying the text it was read from: written again
    (a cached step's outputs, copied from its cache entry), that text is the encoding."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__(json.loads(text))
        self.text = text


def _json(v: Any) -> Any:
    if v is None:
        return None
    if type(v) is StoredJson:
        return v.text
    return _dumps(v)


def _encoder(col: str) -> Any:
    if col in _TIME:
        return _time
    if col in _JSON:
        return _json
    return None


def _rows(cols: tuple[str, ...], rows: Any) -> list[tuple[Any, ...]]:
    """Rows (dicts) as tuples of encoded values in `cols` order. A value shared by
    several rows or columns (one object: a step's parameters or code, given to each of
    its mapped children; the one time a cached step starts and ends at) is encoded once."""
    encoded = [(i, f) for i, c in enumerate(cols) if (f := _encoder(c)) is not None]
    shared: dict[int, Any] = {}
    out = []
    for r in rows:
        values = [r.get(c) for c in cols]
        for i, f in encoded:
            v = values[i]
            if v is None:
                continue
            enc = shared.get(id(v))
            if enc is None:
                enc = shared[id(v)] = (f(v), v)  # keeps v alive: its id stays its own
            values[i] = enc[0]
        out.append(tuple(values))
    return out


def _insert_sql(table: str, cols: tuple[str, ...], ignore: bool) -> str:
    verb = "INSERT OR IGNORE" if ignore else "INSERT"
    return f"{verb} INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


def _rollback(cur: sqlite3.Cursor) -> None:
    """End a failed transaction (there may be none: its BEGIN itself may have failed)."""
    if cur.connection.in_transaction:
        cur.execute("ROLLBACK")


class SqliteFastPath:
    """Writes batches and reads cache entries through one raw sqlite3 connection."""

    def __init__(
        self, engine: Any, step_cols: tuple[str, ...], update_cols: tuple[str, ...],
        opener: Any = None,
    ) -> None:  # fmt: skip
        """On `engine`'s connection, or (no engine) on the one `opener()` opens."""
        if engine is not None:
            self._proxy = engine.raw_connection()  # a pool checkout: our connect hooks applied
            self.conn: sqlite3.Connection = self._proxy.driver_connection
        else:
            self._proxy = self.conn = opener()
        self.step_cols, self.update_cols = step_cols, update_cols
        self.art_cols = TABLE_COLS["artifacts"]
        self.entry_cols = TABLE_COLS["cache_entries"]
        self.sql_step = _insert_sql("step_runs", step_cols, ignore=False)
        self.sql_update = (
            f"UPDATE step_runs SET {', '.join(f'{c} = ?' for c in update_cols)} "
            "WHERE run_id = ? AND name = ?"
        )
        self.attempt_cols = tuple(c for c in TABLE_COLS["attempts"] if c != "id")
        self.sql_attempt = _insert_sql("attempts", self.attempt_cols, ignore=False)
        self.attempt_update_cols = ATTEMPT_UPDATE_COLS
        self.sql_attempt_update = (
            f"UPDATE attempts SET {', '.join(f'{c} = ?' for c in self.attempt_update_cols)} "
            "WHERE run_id = ? AND step = ? AND attempt = ?"
        )
        self.sql_art = _insert_sql("artifacts", self.art_cols, ignore=True)
        self.sql_entry = _insert_sql("cache_entries", self.entry_cols, ignore=True)
        self.run_cols = TABLE_COLS["runs"]
        self.sql_run = _insert_sql("runs", self.run_cols, ignore=False)
        self._checkpoints: checkpoint.Checkpointer | None = None
        self.absent = AbsentSteps()
        self._commits = 0

    def _committed(self) -> None:
        """After each commit: from the `checkpoint.AFTER`th on, the log's checkpoints run
        off this thread (store/checkpoint.py); a short run starts no thread for them."""
        if self._checkpoints is not None:
            self._checkpoints.committed()
            return
        self._commits += 1
        if self._commits == checkpoint.AFTER:
            self._checkpoints = checkpoint.checkpointer_for(self.conn)

    def write(self, batch: Any) -> None:
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            if batch.step_inserts:
                cached = borrowed.any_cached(batch.step_inserts)
                if cached:
                    (last,) = cur.execute(borrowed.SQLITE_LAST_ID).fetchone()
                cur.executemany(self.sql_step, _rows(self.step_cols, batch.step_inserts))
                if cached:
                    cur.execute(borrowed.SQLITE_BORROWED, (last,))
            if batch.step_updates:
                keyed = [r | {"_run": r["run_id"], "_name": r["name"]} for r in batch.step_updates]
                cur.executemany(self.sql_update, _rows((*self.update_cols, "_run", "_name"), keyed))
            self._attempts(cur, batch)
            if batch.artifacts:
                cur.executemany(self.sql_art, _rows(self.art_cols, batch.artifacts.values()))
            if batch.cache_entries:
                cur.executemany(self.sql_entry, _rows(self.entry_cols, batch.cache_entries))
                self.absent.written(batch.cache_entries)
            for name, rows in batch.rows.items():
                self._plain(cur, name, rows)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
        self._committed()

    def create_run(
        self, pipeline: dict[str, Any], run: dict[str, Any], fresh: bool = False
    ) -> None:
        """Upsert the pipeline's row and insert the run's (store/runs.py `new_rows`), in
        one transaction (`fresh` changes nothing here: a commit is not waited for)."""
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            (pipe,) = _rows(("ref", "updated_at", "name"), [pipeline])
            cur.execute("UPDATE pipelines SET ref = ?, updated_at = ? WHERE name = ?", pipe)
            if not cur.rowcount:
                cur.execute(
                    "INSERT OR IGNORE INTO pipelines (ref, updated_at, name) VALUES (?, ?, ?)",
                    pipe,
                )
            cur.execute(self.sql_run, _rows(self.run_cols, [run])[0])
            cur.execute("COMMIT")
        except sqlite3.IntegrityError:
            cur.execute("ROLLBACK")
            raise StoreError(f"run {run['id']} already exists; it cannot start twice") from None
        except sqlite3.Error as exc:
            _rollback(cur)
            raise StoreError(f"cannot record run {run['id']}: {first_line(exc)}") from None
        except BaseException:
            _rollback(cur)
            raise
        finally:
            cur.close()
        self._committed()

    def finish_run(self, run_id: str, status: str, error: str | None) -> None:
        """The run's end; unless it succeeded, its running steps become interrupted."""
        stamp = _time(now())
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.execute(
                "UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ?",
                (status, stamp, error, run_id),
            )
            if status != RunStatus.SUCCEEDED:
                for table in ("step_runs", "attempts"):
                    cur.execute(
                        f"UPDATE {table} SET state = ?, ended_at = ? "
                        "WHERE run_id = ? AND state = ?",
                        (StepState.INTERRUPTED, stamp, run_id, StepState.RUNNING),
                    )
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(cur)
            raise StoreError(f"cannot record the end of run {run_id}: {first_line(exc)}") from None
        except BaseException:
            _rollback(cur)
            raise
        finally:
            cur.close()
        self._committed()

    def _attempts(self, cur: sqlite3.Cursor, batch: Any) -> None:
        if batch.attempt_inserts:
            cur.executemany(self.sql_attempt, _rows(self.attempt_cols, batch.attempt_inserts))
        if batch.attempt_updates:
            cols = (*self.attempt_update_cols, "run_id", "step", "attempt")
            cur.executemany(self.sql_attempt_update, _rows(cols, batch.attempt_updates))

    def _plain(self, cur: sqlite3.Cursor, name: str, rows: list[dict[str, Any]]) -> None:
        from orchestrator.store import schema as t  # the tracking tables: steps ran

        cols = tuple(c.name for c in t.metadata.tables[name].columns if c.name != "id")
        cur.executemany(_insert_sql(name, cols, ignore=False), _rows(cols, rows))

    def cache_get(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT outputs, run_id FROM cache_entries WHERE cache_key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return {"cache_key": key, "outputs": json.loads(row[0]), "run_id": row[1]}

    def history(self, pipeline: str, step: str, limit: int) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT cache_key, code, params, inputs, run_id FROM cache_entries "
            "WHERE pipeline = ? AND step = ? ORDER BY created_at DESC LIMIT ?",
            (pipeline, step, limit),
        ).fetchall()
        return [
            {
                "cache_key": k,
                "code": json.loads(c),
                "params": json.loads(p),
                "inputs": json.loads(i),
                "run_id": r,
            }
            for k, c, p, i, r in reversed(rows)
        ]

    def probe(
        self, key: str, pipeline: str, step: str, limit: int
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
        """`(entry, None)` when `key` has an entry, else `(None, the step's history)`; no
        read for a step the last prefetch found without entries (store/absent.py)."""
        if self.absent.known(pipeline, step, self._renew):
            return None, []
        entry = self.cache_get(key)
        return (entry, None) if entry else (None, self.history(pipeline, step, limit))

    def cache_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The entries of those of `keys` that have one, by key (one read per `CHUNK`)."""
        out = {}
        for i in range(0, len(keys), CHUNK):
            chunk = keys[i : i + CHUNK]
            sql = (
                "SELECT cache_key, outputs, run_id FROM cache_entries "
                f"WHERE cache_key IN ({', '.join('?' * len(chunk))})"
            )
            for k, o, r in self.conn.execute(sql, chunk):
                out[k] = {"cache_key": k, "outputs": StoredJson(o), "run_id": r}
        return out

    def histories(
        self, pipeline: str, steps: list[str], limit: int
    ) -> dict[str, list[dict[str, Any]]]:
        """`history` of each of `steps` that has entries (one read per `CHUNK`; none for
        the steps the last prefetch found without entries)."""
        out: dict[str, list[dict[str, Any]]] = {}
        steps = [s for s in steps if not self.absent.known(pipeline, s, self._renew)]
        for i in range(0, len(steps), CHUNK):
            chunk = steps[i : i + CHUNK]
            sql = (
                "SELECT step, cache_key, code, params, inputs, run_id FROM (SELECT *, "
                "row_number() OVER (PARTITION BY step ORDER BY created_at DESC) AS newest "
                "FROM cache_entries WHERE pipeline = ? AND step IN "
                f"({', '.join('?' * len(chunk))})) WHERE newest <= ? ORDER BY newest DESC"
            )
            for step, k, c, p, i_, r in self.conn.execute(sql, (pipeline, *chunk, limit)):
                out.setdefault(step, []).append(
                    {
                        "cache_key": k,
                        "code": json.loads(c),
                        "params": json.loads(p),
                        "inputs": json.loads(i_),
                        "run_id": r,
                    }
                )
        return out

    def prefetch(
        self, pipeline: str, steps: list[str], eager: bool = False
    ) -> dict[str, dict[str, Any]]:
        """The newest cache entry of each of `steps`, by key (one read per `CHUNK`): a
        re-run's hits, found without a read each. (SQLite takes a bare column of a
        `max()` group from the row holding the maximum.) `eager` changes nothing here: every
        store on this path reads ahead. The steps with none miss with no read for a while
        (store/absent.py)."""
        read_at = time.monotonic()
        out, found = {}, []
        for i in range(0, len(steps), CHUNK):
            chunk = steps[i : i + CHUNK]
            sql = (
                "SELECT cache_key, outputs, run_id, step, max(created_at) FROM cache_entries "
                f"WHERE pipeline = ? AND step IN ({', '.join('?' * len(chunk))}) GROUP BY step"
            )
            for k, o, r, s, _ in self.conn.execute(sql, (pipeline, *chunk)):
                out[k] = {"cache_key": k, "outputs": StoredJson(o), "run_id": r}
                found.append(s)
        self.absent.note(pipeline, steps, found, read_at, absent.WINDOW)
        return out

    def _renew(self, pipeline: str, steps: list[str]) -> None:
        """Read again which of `steps` still have no entry (the last answer is too old)."""
        self.prefetch(pipeline, steps)

    def cancel_requested(self, run_id: str) -> bool:
        row = self.conn.execute(
            "SELECT cancel_requested_at FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        return row is not None and row[0] is not None

    def step_states(self, run_id: str) -> list[dict[str, Any]]:
        """Each step run of the run: its name, state and log (store/runs.py `steps` order)."""
        rows = self.conn.execute(
            "SELECT name, state, log FROM step_runs WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        return [{"name": n, "state": s, "log": log} for n, s, log in rows]

    def close(self) -> None:
        checkpoint.restore(self.conn, self._checkpoints)
        self._checkpoints = None
        self._proxy.close()
