"""Rounds sent to PostgreSQL without waiting for their answers (libpq's pipeline mode).

A relaxed round (its commit does not wait for the server's WAL flush, store/pgpath.py)
need not wait for the server's answer either. `SentRounds.send` writes the round to the
socket as BEGIN, its statements and COMMIT, asks the server to flush its answers (a
Flush message, not a Sync) and returns; the engine goes on while the server commits.
The next call that must wait (a read, a run's end) goes in the same pipeline, then one
Sync: `confirm` waits for every answer at once, so it costs one round trip in all.

Why the order of the record still holds:

* the server runs what one connection sends in the order sent, so a round commits only
  after every earlier round of the connection committed;
* when a statement fails, the server skips every message after it up to the next Sync,
  and no Sync is sent between rounds, so no later round commits after a failed one (the
  first failure is kept, `error`; the caller rolls the failed transaction back);
* bytes a process has written to a socket are delivered after it dies, so a round sent
  survives the death of the run's process as a committed round does. (Over a network, a
  process dying within one network round trip of sending may lose what was still in
  flight, as the kernel resets a connection closed with answers unread: as if it had
  died before sending it, the last rounds are lost and never one without the later
  ones. On loopback the bytes are in the server's queue when the write returns.) A
  crash of the server itself may lose what it had not flushed, as a relaxed commit may.

So a step is recorded finished only after every round before it, its inputs' included.

Statements are prepared on first use (named `orch_<tag>_<n>`, a tag per connection
opening, never reused: after an error some may be missing, so the names start over);
parameters are `%s` or `%(name)s` in the SQL, dumped as text by psycopg's adapters.
"""

from __future__ import annotations

import collections
import itertools
import re
import select
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

_ERROR, _SYNC, _ROWS = (
    pq.ExecStatus.FATAL_ERROR,
    pq.ExecStatus.PIPELINE_SYNC,
    pq.ExecStatus.TUPLES_OK,
)
_MARK = re.compile(r"%\((\w+)\)s|%s")
_ROUND, _READ = "round", "read"


def numbered(sql: str) -> tuple[bytes, list[str] | None]:
    """The SQL with libpq's `$1, $2, ...` for `%s` (None) or `%(name)s` (the names, in
    the order of their numbers; a repeated name keeps its number)."""
    names: dict[str, int] = {}
    count = itertools.count(1)

    def number(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return f"${next(count)}"
        if m.group(1) not in names:
            names[m.group(1)] = len(names) + 1
        return f"${names[m.group(1)]}"

    out = _MARK.sub(number, sql).encode()
    return out, (list(names) if names else None)


def _message(result: Any) -> str:
    """The server's primary message (what psycopg's error says first)."""
    text = result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or result.error_message
    text = (text or b"").decode(errors="replace").strip()
    return text.splitlines()[0] if text else "statement failed"


class SentRounds:
    """Rounds sent on `conn` (psycopg's, non-blocking) and not yet confirmed."""

    def __init__(self, conn: Any) -> None:
        self.pg = conn.pgconn
        self.tx = Transformer(conn)
        self.active = False  # in pipeline mode, with answers to read
        self.kinds: collections.deque[str] = collections.deque()  # unanswered statements
        self.syncs = 0  # Syncs not answered yet
        self.error: str | None = None  # the first failure of a round
        self.failed_in = ""  # that round's label (`send`)
        self.sqlstate: str | None = None  # and its SQLSTATE
        self.read_error: str | None = None  # the failure of the read `confirm` carried
        self.rows: list[tuple[Any, ...]] | None = None
        self._answered = False  # the current statement's result arrived, its end not yet
        self._names: dict[str, tuple[bytes, list[str] | None]] = {}
        self._tag = uuid.uuid4().hex[:8]
        self._counter = itertools.count()

    def send(self, statements: Iterable[tuple[str, Any]], label: str = _ROUND) -> None:
        """BEGIN, `statements` and COMMIT, written to the socket; nothing is waited for.
        `label` names the round in `failed_in` if it fails."""
        if not self.active:
            self.pg.enter_pipeline_mode()
            self.active = True
        self._query("BEGIN", (), label)
        for sql, params in statements:
            self._query(sql, params, label)
        self._query("COMMIT", (), label)
        self.pg.send_flush_request()
        self._flush()
        self.read()

    def _query(self, sql: str, params: tuple[Any, ...] | Mapping[str, Any], kind: str) -> None:
        known = self._names.get(sql)
        if known is None:
            name = f"orch_{self._tag}_{next(self._counter)}".encode()
            text, order = numbered(sql)
            self.pg.send_prepare(name, text)
            self.kinds.append(kind)
            known = self._names[sql] = (name, order)
        name, order = known
        values = [params[k] for k in order] if order is not None else list(params)  # type: ignore[call-overload]
        dumped = self.tx.dump_sequence(values, [PyFormat.TEXT] * len(values))
        self.pg.send_query_prepared(name, [None if v is None else bytes(v) for v in dumped])
        self.kinds.append(kind)

    def _flush(self) -> None:
        fd = self.pg.socket
        while self.pg.flush():  # 1: the socket took part of it; wait, reading answers
            readable, _, _ = select.select([fd], [fd], [])
            if readable:
                self.read()

    def read(self) -> None:
        """Read the answers that arrived, without waiting; keep the first failure."""
        pg = self.pg
        pg.consume_input()
        while not pg.is_busy():
            r = pg.get_result()
            if r is None:  # the end of a statement's results, or nothing more to read
                if not self._answered:
                    break
                self._answered = False
                self.kinds.popleft()
            elif r.status == _SYNC:
                self.syncs -= 1
            else:
                self._answered = True
                self._result(r, self.kinds[0])

    def _result(self, r: Any, kind: str) -> None:
        if kind == _READ:
            if r.status == _ROWS:
                self.tx.set_pgresult(r)
                self.rows = self.tx.load_rows(0, r.ntuples, tuple)
            elif r.status == _ERROR:
                self.read_error = _message(r)
        elif r.status == _ERROR and self.error is None:
            self.error, self.failed_in = _message(r), kind
            state = r.error_field(pq.DiagnosticField.SQLSTATE)
            self.sqlstate = state.decode() if state else None

    def confirm(self, read: tuple[str, Any] | None = None) -> list[tuple[Any, ...]] | None:
        """Send `read` (a SELECT) if given, then a Sync; wait for every answer and leave
        pipeline mode. The rows read, or None (none asked, or not read: `read_error`, or
        a round before it failed: `error`)."""
        self.rows = self.read_error = None
        if not self.active:
            return None
        if read is not None:
            self._query(*read, _READ)
        self.pg.pipeline_sync()
        self.syncs += 1
        self._flush()
        self.read()
        while self.kinds or self.syncs:
            select.select([self.pg.socket], [], [])
            self.read()
        self.pg.exit_pipeline_mode()
        self.active = False
        if self.error is not None or self.read_error is not None:
            self._names.clear()  # statements prepared after the failure were skipped
        rows, self.rows = self.rows, None
        return rows
