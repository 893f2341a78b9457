"""The engine's hot path on PostgreSQL (psycopg 3): a scheduling round costs no wait.

A scheduling round's batch (step-run inserts and updates, artifacts, cache entries) is
sent in libpq's pipeline mode: BEGIN, the batch's statements and COMMIT go out together.
A relaxed round (below) is not waited for: `write` returns once it is sent, and its
answers are read by the next call that waits (store/pgsent.py says why the record's
order holds); a read, a run's end or `settle` carries the rounds sent before it and
costs one round trip in all. Any other round waits for its answers after one Sync: one
round trip however many rows it holds (and a round whose parts may run together, a
chain's, is one statement: `_together`). The rows of one kind (step-run inserts, their updates,
attempts, artifacts, cache entries, each tracking table's rows) are one statement, their
values one JSON parameter the server expands (store/pgrecords.py); a round inserting
cached step runs adds one statement merging the metric points they borrow
(store/borrowed.py). A cache lookup is one autocommit SELECT (no BEGIN or ROLLBACK around
it); a lookup that misses brings the step's history (what `explain` compares the new key
with) in the same statement.
`prefetch` reads the newest entry of every step of a run in one statement, so a re-run's
hits cost no read each, and a step with no entry at all then misses with no read for
`ABSENT_FOR` seconds after it (an entry another run commits in that window is not seen,
as if committed just after the lookup; entries this path writes are never missed); past
the window, one read renews the answer for every such step at once. So a first run
costs two round trips (the prefetch, carrying the run's creation when its id is fresh,
and its end) however many rounds it has.

Flushing. A round's transaction (and a run's creation) commits without waiting for the
server's WAL flush (`SET LOCAL synchronous_commit = off`: "relaxed") unless the server,
database, role or URL chose a `synchronous_commit` of its own (then it is kept, and
every round is waited for); a run's end always waits for the flush, which makes every
earlier round of the run durable with it. A round sent survives the death of the run's
process at any instant (the project's durability rule); only a crash of the database
server itself in the fraction of a second before its WAL writer flushes may lose the
last rounds, never a later round without the earlier ones (the WAL is one sequence),
and never a round of a run recorded finished.

Read your writes. A read through this path carries the rounds it sent; before any other
connection of the process is used (a pool checkout, store/db.py; another store's hot
path) every round the process sent is confirmed (`settle_all`), so what a step reads of
the store includes its inputs' records; the engine settles before it hands a step to
another process.

Invariants: a batch is all or nothing (a failed statement aborts the transaction, the
COMMIT is skipped and the transaction rolled back); a round sent after a failed one
commits nothing, and the failure is raised by the next `write`, `settle` or run's end
(which then records the run failed). Values are encoded as the portable SQLAlchemy path
encodes them (JSON columns hold JSON, `None` included, as `null`; times are aware UTC),
so both paths read each other's rows. A connection found broken is replaced before the
next statement (rounds it had sent unconfirmed are a failure). Calls are serialised (a
reentrant lock), so threads sharing a store never interleave a batch. A run's creation
and its end are one round trip each too (`create_run`, `finish_run`: the rows and rules
of store/runs.py).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Json

from orchestrator.errors import StoreError
from orchestrator.state import RunStatus, StepState
from orchestrator.store import borrowed
from orchestrator.store import schema as t
from orchestrator.store.absent import WINDOW, AbsentSteps
from orchestrator.store.base import now
from orchestrator.store.db import first_line
from orchestrator.store.pgrecords import Records
from orchestrator.store.pgsent import SentRounds

Row = dict[str, Any]

_TABLES = (
    t.pipelines,
    t.runs,
    t.step_runs,
    t.artifacts,
    t.cache_entries,
    t.attempts,
    t.run_metrics,
    t.run_params,
    t.run_artifacts,
)
_JSON = {c.name for tbl in _TABLES for c in tbl.columns if c.type.__class__.__name__ == "JSON"}
_TIME = {c.name for tbl in _TABLES for c in tbl.columns if isinstance(c.type, t.UTCDateTime)}
_RUN_COLS = tuple(c.name for c in t.runs.columns)
_UPSERT_PIPELINE = (
    "INSERT INTO pipelines (name, ref, updated_at) VALUES (%s, %s, %s) "
    "ON CONFLICT (name) DO UPDATE SET ref = EXCLUDED.ref, updated_at = EXCLUDED.updated_at"
)
_FINISH_RUN = "UPDATE runs SET status = %s, ended_at = %s, error = %s WHERE id = %s"
_INTERRUPT_STEPS = "UPDATE step_runs SET state = %s, ended_at = %s WHERE run_id = %s AND state = %s"
_INTERRUPT_ATTEMPTS = (
    "UPDATE attempts SET state = %s, ended_at = %s WHERE run_id = %s AND state = %s"
)
_RELAX_HERE = " SELECT set_config('synchronous_commit', 'off', true)"  # this transaction only
_HISTORY = ("cache_key", "code", "params", "inputs", "run_id")
_RELAX = "SET LOCAL synchronous_commit = off"
# where the session's synchronous_commit comes from: "default" when nobody chose one
_FLUSH_SOURCE = "SELECT source FROM pg_settings WHERE name = 'synchronous_commit'"
_OPENING = threading.local()  # `now`: this thread opens a hot path's connection
_UNSETTLED: weakref.WeakSet[PostgresFastPath] = weakref.WeakSet()  # rounds sent, unanswered
ABSENT_FOR = WINDOW  # seconds a prefetch's "this step has no entry" answers lookups

# the entry of a key; else (NOT EXISTS) the step's newest entries: one statement either way
PROBE_SQL = (
    "SELECT true, cache_key, outputs, run_id, NULL::json, NULL::json, NULL::json, "
    "created_at FROM cache_entries WHERE cache_key = %(key)s "
    "UNION ALL SELECT * FROM (SELECT false, cache_key, NULL::json, run_id, code, params, "
    "inputs, created_at FROM cache_entries WHERE pipeline = %(pipeline)s AND step = %(step)s "
    "AND NOT EXISTS (SELECT 1 FROM cache_entries WHERE cache_key = %(key)s) "
    "ORDER BY created_at DESC LIMIT %(limit)s) AS history"
)

# the entries of many keys (a mapped step's children), and the newest entries of many steps
MANY_SQL = "SELECT cache_key, outputs, run_id FROM cache_entries WHERE cache_key = ANY(%s)"
HISTORIES_SQL = (
    "SELECT step, cache_key, code, params, inputs, run_id FROM (SELECT *, row_number() "
    "OVER (PARTITION BY step ORDER BY created_at DESC) AS newest FROM cache_entries "
    "WHERE pipeline = %s AND step = ANY(%s)) AS h WHERE newest <= %s ORDER BY newest DESC"
)

# the newest entry of each of a pipeline's steps, one index probe per step
NEWEST_SQL = (
    "SELECT e.cache_key, e.outputs, e.run_id, s.step FROM unnest(%(steps)s::text[]) AS s(step) "
    "CROSS JOIN LATERAL (SELECT cache_key, outputs, run_id FROM cache_entries "
    "WHERE pipeline = %(pipeline)s AND step = s.step ORDER BY created_at DESC LIMIT 1) AS e"
)


def _time(v: dt.datetime | None) -> dt.datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)


def _encoder(col: str) -> Any:
    if col in _TIME:
        return _time
    if col in _JSON:
        return Json
    return None


def _rows(cols: tuple[str, ...], rows: Any) -> list[tuple[Any, ...]]:
    """Rows (dicts) as tuples of encoded values in `cols` order."""
    plan = [(c, _encoder(c)) for c in cols]
    return [tuple(r.get(c) if f is None else f(r.get(c)) for c, f in plan) for r in rows]


def _insert_sql(table: Any, cols: tuple[str, ...], ignore: bool) -> str:
    tail = " ON CONFLICT DO NOTHING" if ignore else ""
    marks = ", ".join(["%s"] * len(cols))
    return f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({marks}){tail}"


def _together(
    statements: list[tuple[str, tuple[Any, ...]]], batch: Any
) -> tuple[str, tuple[Any, ...]] | None:
    """The batch's statements as one (each a data-modifying `WITH` part, then a final
    SELECT that `_send_one` completes), or None when they must run one after another: a
    round of cached steps (the metric points they borrow are merged by a statement that
    must follow theirs) or one changing a row twice (one statement changes a row once).
    The parts of one statement see one snapshot, so none may depend on another's rows:
    a step run inserted and changed in one batch is one insert (engine/recorder.py)."""
    if borrowed.any_cached(batch.step_inserts):
        return None
    body = [(sql, params) for sql, params in statements if sql != _RELAX]
    if not body:
        return None
    tables = [sql.split(" ", 2)[1] for sql, _ in body if sql.startswith("UPDATE")]
    if len(tables) != len(set(tables)):  # a row changed twice: successive statements
        return None
    parts = ", ".join(f"w{i} AS ({sql})" for i, (sql, _) in enumerate(body))
    return f"WITH {parts}", tuple(p for _, ps in body for p in ps)


def supported(engine: Any) -> bool:
    """Whether `engine` is PostgreSQL through psycopg 3 with libpq's pipeline mode (import
    this module only for a psycopg engine: it imports psycopg)."""
    return (
        engine.dialect.name == "postgresql"
        and engine.dialect.driver == "psycopg"
        and psycopg.Pipeline.is_supported()
    )


class PostgresFastPath:
    """Writes batches and reads cache entries through one raw psycopg connection."""

    def __init__(
        self, engine: Any, step_cols: tuple[str, ...], update_cols: tuple[str, ...]
    ) -> None:
        self.engine = engine
        self.lock = threading.RLock()  # reentrant: an opening's checkout settles (db.py)
        self._proxy: Any = None
        self.failed: str | None = None  # a round sent that failed, raised by the next call
        self.failed_creation = False  # that round created the run: its end is not recorded
        self.relaxed = False  # rounds commit without waiting for the WAL flush
        self.conn: psycopg.Connection[Any] = self._open()
        self.absent = AbsentSteps()
        self.step_cols, self.update_cols = step_cols, update_cols
        attempt_cols = tuple(c.name for c in t.attempts.columns if c.name != "id")
        attempt_update_cols = ("state", "ended_at", "duration", "error", "traceback", "log")
        self.steps = Records(t.step_runs, step_cols)
        self.step_changes = Records(t.step_runs, update_cols, keys=("run_id", "name"))
        self.attempts = Records(t.attempts, attempt_cols)
        self.attempt_changes = Records(
            t.attempts, attempt_update_cols, keys=("run_id", "step", "attempt")
        )
        self.arts = Records(t.artifacts, tuple(c.name for c in t.artifacts.columns))
        self.entries = Records(t.cache_entries, tuple(c.name for c in t.cache_entries.columns))
        self.sql_steps, self.sql_attempts = self.steps.insert_sql(), self.attempts.insert_sql()
        self.sql_step_changes = self.step_changes.update_sql()
        self.sql_attempt_changes = self.attempt_changes.update_sql()
        self.sql_arts = self.arts.insert_sql(ignore=True)  # content-keyed: a row there is kept
        self.sql_entries = self.entries.insert_sql(ignore=True)
        self.plain: dict[str, tuple[Records, str]] = {}  # tracking tables, by name

    def _open(self) -> psycopg.Connection[Any]:
        """A pooled connection (the engine's connect hooks applied), in autocommit mode."""
        _OPENING.now = True
        try:
            self._proxy = self.engine.raw_connection()
        finally:
            _OPENING.now = False
        conn: psycopg.Connection[Any] = self._proxy.driver_connection
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.rollback()
        conn.autocommit = True
        row = conn.execute(_FLUSH_SOURCE).fetchone()
        self.relaxed = row is not None and row[0] == "default"
        self.sent = SentRounds(conn)
        return conn

    def _live(self) -> psycopg.Connection[Any]:
        """The connection, out of pipeline mode unless `write` sends: a broken one is
        replaced (rounds it had sent and not confirmed make the next call fail)."""
        if self.conn.broken or self.conn.closed:
            if self.sent.active and self.failed is None:
                self.failed = (
                    "cannot record step states: the connection broke before the rounds "
                    "sent were confirmed"
                )
            self.sent.active = False
            _UNSETTLED.discard(self)
            self._proxy.invalidate()
            self.conn = self._open()
        return self.conn

    def _ready(self) -> psycopg.Connection[Any]:
        """The live connection out of pipeline mode, for psycopg's own statements."""
        conn = self._live()
        if self.sent.active:
            self._confirm()
        return conn

    def _statements(self, batch: Any) -> list[tuple[str, tuple[Any, ...]]]:
        """The batch as one statement per kind of row (one more per repeated update)."""
        out: list[tuple[str, tuple[Any, ...]]] = [(_RELAX, ())] if self.relaxed else []
        if batch.step_inserts:
            out.append((self.sql_steps, (self.steps.document(batch.step_inserts),)))
            cached = borrowed.pg_document(batch.step_inserts)
            if cached is not None:  # what the cached rows borrow: one statement
                out.append((borrowed.PG_BORROWED, (cached,)))
        if batch.attempt_inserts:
            out.append((self.sql_attempts, (self.attempts.document(batch.attempt_inserts),)))
        for records, sql, rows in (
            (self.step_changes, self.sql_step_changes, batch.step_updates),
            (self.attempt_changes, self.sql_attempt_changes, batch.attempt_updates),
        ):
            out += [(sql, (records.document(g),)) for g in records.update_groups(rows)]
        if batch.artifacts:
            out.append((self.sql_arts, (self.arts.document(batch.artifacts.values()),)))
        if batch.cache_entries:
            out.append((self.sql_entries, (self.entries.document(batch.cache_entries),)))
        for name, rows in batch.rows.items():  # plain inserts: what steps tracked
            records, sql = self._plain(name)
            out.append((sql, (records.document(rows),)))
        return out

    def _plain(self, name: str) -> tuple[Records, str]:
        if name not in self.plain:
            table = t.metadata.tables[name]
            records = Records(table, tuple(c.name for c in table.columns if c.name != "id"))
            self.plain[name] = (records, records.insert_sql())
        return self.plain[name]

    def write(self, batch: Any) -> None:
        """The batch in one transaction. Relaxed, it is sent and not waited for (store/
        pgsent.py: a failure is raised by the next write, which sends nothing more);
        else one round trip: one statement when its parts may run together
        (`_together`), else a pipelined transaction."""
        statements = self._statements(batch)
        self.absent.written(batch.cache_entries)
        try:
            with self.lock:
                self._live()
                if self.sent.active:
                    self.sent.read()
                if self.sent.error is not None:
                    self._confirm()
                if self.failed is not None:
                    self._raise_failed()
                together = _together(statements, batch)
                if self.relaxed:
                    if together is not None:  # its last part relaxes the commit
                        statements = [(together[0] + _RELAX_HERE, together[1])]
                    self._send_unwaited(statements)
                elif together is not None:
                    self._send_one(together)
                else:
                    self._send(statements)
        except psycopg.Error as exc:
            raise StoreError(f"cannot record step states: {first_line(exc)}") from None

    def _send_unwaited(self, statements: list[tuple[str, Any]], label: str = "round") -> None:
        try:
            self.sent.send(statements, label)
        except BaseException:
            self._confirm()
            raise
        _UNSETTLED.add(self)

    def settle(self) -> None:
        """Wait until every round sent is answered (one round trip); a failed one raises
        `StoreError`."""
        with self.lock:
            self._confirm()
            self._raise_failed()

    def _confirm(self, read: tuple[str, Any] | None = None) -> list[tuple[Any, ...]] | None:
        """Wait for the answers to the rounds sent, with `read` in the same round trip:
        its rows, or None (not read). A failed round is rolled back and kept in `failed`
        for the engine's next call (a read from elsewhere in the process confirms too,
        and must not take it); so is a connection lost with rounds unconfirmed."""
        with self.lock:
            _UNSETTLED.discard(self)
            if not self.sent.active:
                return None
            try:
                rows = self.sent.confirm(read)
            except psycopg.Error as exc:
                self.sent.active = False  # the connection broke: replaced before its next use
                lost = f"cannot record step states: rounds sent were lost: {first_line(exc)}"
                self.failed = self.failed or lost
                return None
            error, self.sent.error = self.sent.error, None
            if error is not None or self.sent.read_error is not None:
                self._abandon()
            if error is not None:
                self.failed = self.failed or self._failure(error)
            return rows

    def _failure(self, error: str) -> str:
        """The text of a failed round sent (`SentRounds.failed_in` names it)."""
        label, state = self.sent.failed_in, self.sent.sqlstate
        if not label.startswith("run "):
            return f"cannot record step states: {error}"
        self.failed_creation = True
        run_id = label.removeprefix("run ")
        if state == psycopg.errors.UniqueViolation.sqlstate:
            return f"run {run_id} already exists; it cannot start twice"
        return f"cannot record run {run_id}: {error}"

    def _raise_failed(self) -> None:
        error, self.failed = self.failed, None
        if error is not None:
            raise StoreError(error)

    def _send_one(self, statement: tuple[str, tuple[Any, ...]]) -> None:
        """One statement, its own transaction (autocommit): all or nothing, committed
        when it returns; relaxed as `_RELAX` relaxes a pipelined round."""
        sql, params = statement
        sql += _RELAX_HERE if self.relaxed else " SELECT 1"
        with self.lock:
            conn = self._ready()
            try:
                with conn.pipeline():  # so its first prepare goes with it: one round trip
                    conn.execute(sql, params)
            except BaseException:
                self._abandon()
                raise

    def create_run(self, pipeline: Row, run: Row, fresh: bool = False) -> None:
        """Upsert the pipeline's row and insert the run's (store/runs.py `new_rows`). A
        `fresh` run (its id just drawn at random: no other run has it) is sent and not
        waited for when relaxed; should it fail all the same, nothing the run does is
        recorded, and its end raises (and records nothing: the id may be another's)."""
        pipe = _rows(("name", "ref", "updated_at"), [pipeline])[0]
        statements = [(_RELAX, ())] if self.relaxed else []  # the run's end flushes it
        statements.append((_UPSERT_PIPELINE, pipe))
        statements.append((_insert_sql(t.runs, _RUN_COLS, False), _rows(_RUN_COLS, [run])[0]))
        self.failed_creation = False  # kept until the next run: no end may be written
        try:
            if fresh and self.relaxed:
                with self.lock:
                    self._live()
                    self._send_unwaited(statements, label=f"run {run['id']}")
                return
            self._send(statements)
        except psycopg.errors.UniqueViolation:
            raise StoreError(f"run {run['id']} already exists; it cannot start twice") from None
        except psycopg.Error as exc:
            raise StoreError(f"cannot record run {run['id']}: {first_line(exc)}") from None

    def finish_run(self, run_id: str, status: str, error: str | None) -> None:
        """The run's end; unless it succeeded, its running steps become interrupted. With
        the rounds sent before it, it is one round trip; its commit waits for the flush.
        A round sent that failed makes the run's end failed, and raises."""
        statements = self._end(run_id, status, error)
        try:
            with self.lock:
                self._live()
                if self.sent.active and self.failed is None and self.sent.error is None:
                    self.sent.send(statements)
                    self._confirm()
                    if self.failed is None:
                        return
                self._confirm()
                failed, self.failed = self.failed, None
                if self.failed_creation:  # the run was not recorded: nor is its end
                    if failed is not None:
                        raise StoreError(failed)
                    return
                if failed is not None:  # the run did not record all it did
                    status, error = RunStatus.FAILED, failed
                self._send(self._end(run_id, status, error))
        except psycopg.Error as exc:
            raise StoreError(f"cannot record the end of run {run_id}: {first_line(exc)}") from None
        if failed is not None:
            raise StoreError(error)

    @staticmethod
    def _end(run_id: str, status: str, error: str | None) -> list[tuple[str, tuple[Any, ...]]]:
        stamp = now()
        statements = [(_FINISH_RUN, (status, stamp, error, run_id))]
        if status != RunStatus.SUCCEEDED:
            args = (StepState.INTERRUPTED, stamp, run_id, StepState.RUNNING)
            statements.append((_INTERRUPT_STEPS, args))
            statements.append((_INTERRUPT_ATTEMPTS, args))
        return statements

    def _send(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        """`statements` in one transaction and one round trip; all or nothing."""
        with self.lock:
            conn = self._ready()
            try:
                with conn.pipeline(), conn.cursor() as cur:
                    cur.execute("BEGIN")
                    for sql, params in statements:
                        cur.execute(sql, params)
                    cur.execute("COMMIT")
            except BaseException:
                self._abandon()
                raise

    def _abandon(self) -> None:
        """Roll back what a failed batch left open (nothing of it is committed)."""
        try:
            if self.conn.info.transaction_status != TransactionStatus.IDLE:
                self.conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # a broken connection: replaced before the next statement

    def _read(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        """The rows of a SELECT: with the rounds sent, if any, in one round trip (after
        those other hot paths of this process sent: read your writes)."""
        settle_all(but=self)
        with self.lock:
            try:
                self._live()
                if self.sent.active:
                    rows = self._confirm((sql, params))
                    if rows is not None:
                        return rows
                return self._ready().execute(sql, params).fetchall()
            except psycopg.Error as exc:
                self._abandon()
                raise StoreError(f"cannot read the cache index: {first_line(exc)}") from None

    def cache_get(self, key: str) -> Row | None:
        rows = self._read("SELECT outputs, run_id FROM cache_entries WHERE cache_key = %s", (key,))
        if not rows:
            return None
        return {"cache_key": key, "outputs": rows[0][0], "run_id": rows[0][1]}

    def history(self, pipeline: str, step: str, limit: int) -> list[Row]:
        return self.probe("", pipeline, step, limit)[1] or []

    def probe(
        self, key: str, pipeline: str, step: str, limit: int
    ) -> tuple[Row | None, list[Row] | None]:
        """`(entry, None)` when `key` has an entry, else `(None, the step's history)`; no
        read for a step the last prefetch found without entries, within `ABSENT_FOR`."""
        if self.absent.known(pipeline, step, self._note_absent):
            return None, []
        args = {"key": key, "pipeline": pipeline, "step": step, "limit": limit}
        rows = self._read(PROBE_SQL, args)
        if rows and rows[0][0]:
            _, k, outputs, run_id, *_ = rows[0]
            return {"cache_key": k, "outputs": outputs, "run_id": run_id}, None
        rows.sort(key=lambda r: r[7])  # oldest first (a union's order is not promised)
        picked = [(r[1], r[4], r[5], r[6], r[3]) for r in rows]  # in _HISTORY's order
        return None, [dict(zip(_HISTORY, p, strict=True)) for p in picked]

    def cache_many(self, keys: list[str]) -> dict[str, Row]:
        """The entries of those of `keys` that have one, by key: one read."""
        if not keys:
            return {}
        rows = self._read(MANY_SQL, (keys,))
        return {k: {"cache_key": k, "outputs": o, "run_id": r} for k, o, r in rows}

    def histories(self, pipeline: str, steps: list[str], limit: int) -> dict[str, list[Row]]:
        """`history` of each of `steps` with entries: one read (none for the steps the
        last prefetch found without entries, within `ABSENT_FOR`)."""
        steps = [s for s in steps if not self.absent.known(pipeline, s, self._note_absent)]
        if not steps:
            return {}
        out: dict[str, list[Row]] = {}
        for step, *picked in self._read(HISTORIES_SQL, (pipeline, steps, limit)):
            out.setdefault(step, []).append(dict(zip(_HISTORY, picked, strict=True)))
        return out

    def _note_absent(self, pipeline: str, steps: list[str]) -> list[tuple[Any, ...]]:
        """The newest entry of each of `steps`; those with none are noted absent."""
        read_at = time.monotonic()  # the window counts from before the server's snapshot
        rows = self._read(NEWEST_SQL, {"pipeline": pipeline, "steps": steps})
        self.absent.note(pipeline, steps, (s for *_, s in rows), read_at, ABSENT_FOR)
        return rows

    def prefetch(self, pipeline: str, steps: list[str], eager: bool = False) -> dict[str, Row]:
        """The newest cache entry of each step, by key, in one read: a re-run's hits (and
        the steps with none, which miss without a read for a while)."""
        rows = self._note_absent(pipeline, steps)
        return {k: {"cache_key": k, "outputs": o, "run_id": r} for k, o, r, _ in rows}

    def close(self) -> None:
        with self.lock:
            self._confirm()
        try:
            if not (self.conn.broken or self.conn.closed):
                self.conn.autocommit = False  # the pool's connections are transactional
        except psycopg.Error:
            self._proxy.invalidate()
        self._proxy.close()


def settle_all(but: PostgresFastPath | None = None) -> None:
    """Confirm every hot path's rounds sent in this process (before a read through
    another connection, so that it sees them: store/db.py); a failure is kept for the
    engine that sent them. Not while this thread opens a hot path's connection (it holds
    that path's lock, and reads nothing that needs them)."""
    if getattr(_OPENING, "now", False):
        return
    for path in list(_UNSETTLED):
        if path is not but:
            path._confirm()
