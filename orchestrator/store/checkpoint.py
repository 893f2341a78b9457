"""Checkpoints of the engine's SQLite write-ahead log, off the engine's thread.

SQLite copies its log back into the database file (a checkpoint: the copy and two
fsyncs) inside whichever connection's commit finds the log past 1000 pages. A step of a
chain commits about ten pages, so one commit in a hundred paid for the copy: 0.04-0.1 ms
per step on average, in the engine's thread, between a step's end and its child's start.

So from its `AFTER`th commit on (a short run starts no thread), the engine's writing
connection turns automatic checkpoints off (`wal_autocheckpoint=0`) and a
`Checkpointer` thread, on a connection of its own, runs PASSIVE checkpoints (they never
wait for a reader or a writer) while commits come in, at most every `every` seconds; it
sleeps while none come. Closing restores the writing connection's setting. Other
connections (other processes, the UI) keep SQLite's default, and SQLite checkpoints
when the last connection closes, so the log stays bounded whoever writes. Durability
does not change: a commit is durable in the log, checkpointed or not.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from urllib.parse import quote

DEFAULT_PAGES = 1000  # SQLite's own wal_autocheckpoint
AFTER = 32  # commits of one connection before its checkpoints move to a thread


class Checkpointer:
    """A daemon thread checkpointing the WAL of the database file at `path`."""

    def __init__(self, path: str, every: float = 0.2) -> None:
        self.path, self.every = path, every
        self.commits = 0  # bumped by the writer after each commit (`committed`)
        self._seen = 0
        self._parked = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="orch-wal")
        self._thread.start()

    def committed(self) -> None:
        """The writer committed: a parked thread wakes (a plain check when it runs)."""
        self.commits += 1
        if self._parked:
            self._parked = False
            self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5.0)

    def _loop(self) -> None:
        try:
            conn = sqlite3.connect(
                f"file:{quote(self.path)}?mode=rw", uri=True, isolation_level=None, timeout=0
            )
        except sqlite3.Error:
            return  # an optimisation only: SQLite checkpoints when the last connection closes
        try:
            while not self._stop.is_set():
                if self.commits == self._seen:
                    self._parked = True
                    if self.commits == self._seen:  # else a commit came as we parked
                        self._wake.wait()
                    self._wake.clear()
                    self._parked = False
                    continue
                self._seen = self.commits
                with contextlib.suppress(sqlite3.Error):  # busy: another one checkpoints
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self._stop.wait(self.every)
        finally:
            conn.close()


def checkpointer_for(conn: sqlite3.Connection) -> Checkpointer | None:
    """Take checkpoints off `conn` (a writing connection in WAL mode on a file) onto a
    `Checkpointer`; None (nothing changed) for any other database."""
    (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    files = [row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"]
    if str(mode).lower() != "wal" or not files or not files[0]:
        return None
    conn.execute("PRAGMA wal_autocheckpoint=0")
    return Checkpointer(files[0])


def restore(conn: sqlite3.Connection, checkpointer: Checkpointer | None) -> None:
    """Stop `checkpointer` and give `conn` SQLite's default checkpoints back."""
    if checkpointer is not None:
        checkpointer.close()
        conn.execute(f"PRAGMA wal_autocheckpoint={DEFAULT_PAGES}")
