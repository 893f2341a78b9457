"""Counting a SQLAlchemy engine's round trips to PostgreSQL (a diagnostic for benches and tests).

`RoundTrips(engine)` hooks the engine's pool: every connection checked out from then on
(the engine's hot path takes one too) has libpq's protocol trace written to a file of
its own. A round trip is one exchange the client waits for, and each ends with the
server's ReadyForQuery message (one per simple query, one per Sync of the extended
protocol or of a pipeline), so `count()` is the number of ReadyForQuery messages the
server has sent on the engine's connections since they were first checked out, and
`commands()` the tags of the statements the server completed since the last call
(`INSERT 0 3`, `UPDATE 1`, `COMMIT`: one per statement, with the rows it changed).
Connections opened before the counter are counted from their next checkout.
Needs psycopg 3; tracing costs time, so count in a pass that is not timed.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import IO, Any

from psycopg import pq
from sqlalchemy import Engine, event

_FLAGS = pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE


class RoundTrips:
    """Round trips of `engine`'s connections, read from their libpq traces."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.folder = Path(tempfile.mkdtemp(prefix="orch-pgtrace-"))
        self._traced: dict[int, tuple[Any, IO[str]]] = {}
        self._read: dict[str, int] = {}  # trace file -> how far it has been counted
        self._total = 0
        self._commands: list[str] = []
        event.listen(engine, "checkout", self._on_checkout)

    def _on_checkout(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if id(dbapi_conn) in self._traced:
            return
        out = open(self.folder / f"conn-{len(self._traced)}.trace", "a")  # noqa: SIM115
        self._traced[id(dbapi_conn)] = (dbapi_conn, out)
        self._start(dbapi_conn, out)

    @staticmethod
    def _start(dbapi_conn: Any, out: IO[str]) -> None:
        dbapi_conn.pgconn.trace(out.fileno())
        dbapi_conn.pgconn.set_trace_flags(_FLAGS)

    def count(self) -> int:
        """Round trips so far (each live connection's trace is flushed first)."""
        for conn, out in self._traced.values():
            if not conn.closed:
                conn.pgconn.untrace()  # flushes libpq's buffer
                self._start(conn, out)
        for path in self.folder.glob("*.trace"):
            with path.open() as f:
                f.seek(self._read.get(path.name, 0))
                for line in f.read().split("\n"):
                    if line.startswith("B\t5\tReadyForQuery"):
                        self._total += 1
                    elif line.startswith("B\t") and "\tCommandComplete\t" in line:
                        self._commands.append(line.split("\t", 3)[3].strip(' "'))
                self._read[path.name] = f.tell()
        return self._total

    def commands(self) -> list[str]:
        """The statements completed since the last call, as the server tagged them."""
        self.count()
        out, self._commands = self._commands, []
        return out

    def close(self) -> None:
        event.remove(self.engine, "checkout", self._on_checkout)
        for conn, out in self._traced.values():
            with contextlib.suppress(Exception):
                if not conn.closed:
                    conn.pgconn.untrace()
            out.close()
        for path in self.folder.glob("*.trace"):
            path.unlink()
        self.folder.rmdir()
