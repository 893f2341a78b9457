"""Database engines and migrations for the metadata store.

`connect(url)` makes a SQLAlchemy engine for any URL. For SQLite it sets WAL, a busy
timeout and `BEGIN IMMEDIATE` transactions, so two processes writing at once queue
instead of failing with "database is locked". `migrate(engine)` brings the schema to the
Alembic head; it is a single cheap query when the schema is already current.

Read-only stores (`connect(url, readonly=True)`). A SQLite file whose folder cannot be
written (a read-only mount, a folder of someone else's) cannot be opened the usual way:
WAL mode needs a `-shm` file beside the database. `readonly_reason(url)` says why a file
cannot be written (None if it can); a read-only engine opens it with SQLite's URI
`mode=ro` when the folder is writable or a `-shm` is there already (a writer holds the
store open elsewhere: its newest rows, still in the `-wal`, are read), and otherwise
with `immutable=1`, which reads the main file alone without any lock: safe because with
no `-shm` there is no write-ahead log in use, and nothing can write through a read-only
folder. A `-wal` with data but no `-shm` in a read-only folder cannot be read safely and
is refused. On PostgreSQL a read-only engine's sessions are `default_transaction_read_only`.

SQLAlchemy loads only when an engine is made. A SQLite file already at the head is
checked with the standard library alone (`sqlite_at_head`), and `open_sqlite` opens the
raw sqlite3 connection an engine's connections are (same pragmas), so a cached run on
such a store needs no engine.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy import Engine

HEAD = "0014"
_MIGRATIONS = Path(__file__).parent / "migrations"


def _mask(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases and `:memory:`)."""
    if not url.startswith("sqlite"):
        return None
    plain = _PLAIN_SQLITE.fullmatch(url)
    if plain is not None:  # no query, no escapes: the path as written
        name: str | None = plain.group(1)
    else:
        from sqlalchemy.engine import make_url

        name = make_url(url).database
    return Path(name) if name and name != ":memory:" else None


_PLAIN_SQLITE = re.compile(r"sqlite(?:\+pysqlite)?:///([^?#%]*)")


def describe(url: str) -> str:
    """The database as messages name it: a SQLite file's path, else the masked URL."""
    path = sqlite_path(url)
    return str(path) if path is not None else _mask(url)


def readonly_reason(url: str) -> str | None:
    """Why the SQLite file of `url` cannot be written here (None if it can, or not SQLite)."""
    path = sqlite_path(url)
    if path is None:
        return None
    folder = path.parent
    if not folder.is_dir():
        return None  # nothing to open either way: the driver says so
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    if not os.access(folder, os.W_OK):
        return "its folder is not writable"
    return None


def connect(url: str, readonly: bool = False) -> Engine:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    try:
        if url.startswith("sqlite"):
            args: dict[str, Any] = {"timeout": 60, "check_same_thread": False}
            if readonly:
                engine = create_engine(url, creator=_readonly_opener(url, args))
            else:
                engine = create_engine(url, connect_args=args)
            _sqlite_setup(engine, readonly)
        elif readonly:
            options = {"options": "-c default_transaction_read_only=on"}
            engine = create_engine(url, pool_pre_ping=True, connect_args=options)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        if not url.startswith("sqlite"):
            from sqlalchemy import event

            event.listen(engine, "checkout", _settle_sent)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot open metadata store {_mask(url)}: {exc}") from None
    return engine


def _settle_sent(*_: Any) -> None:
    """Before a connection is used, the rounds this process's PostgreSQL hot paths sent
    are confirmed (store/pgsent.py), so what it reads includes them (read your writes)."""
    pgpath = sys.modules.get("orchestrator.store.pgpath")
    if pgpath is not None:
        pgpath.settle_all()


def _readonly_opener(url: str, args: dict[str, Any]) -> Any:
    from urllib.parse import quote

    path = sqlite_path(url)
    if path is None:
        raise ValueError("a read-only store needs a database file")
    if not path.exists():
        raise StoreError(f"no metadata store at {path} (it is read-only here, so none is made)")
    shm, wal = Path(f"{path}-shm"), Path(f"{path}-wal")
    if os.access(path.parent, os.W_OK) or shm.exists():
        mode = "mode=ro"
    elif wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"cannot read the metadata store {path}: its write-ahead log {wal.name} has no "
            f"{shm.name} beside it and the folder is read-only; open it once where it is "
            "writable"
        )
    else:
        mode = "immutable=1"
    uri = f"file:{quote(str(path.resolve()))}?{mode}"
    return lambda: sqlite3.connect(uri, uri=True, **args)


def _prepare(dbapi_conn: Any, readonly: bool) -> None:
    """What every SQLite connection of the store is set to, however it is opened."""
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=60000")
    if not readonly:  # a read-only file keeps the journal mode it has
        _wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def open_sqlite(url: str) -> sqlite3.Connection:
    """A raw connection to the (writable) SQLite file of `url`, set up as an engine's are."""
    path = sqlite_path(url)
    if path is None:
        raise ValueError(f"{url}: not a SQLite database file")
    conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
    try:
        _prepare(conn, readonly=False)
    except BaseException:
        conn.close()
        raise
    return conn


def sqlite_at_head(url: str) -> bool:
    """Whether `url` is a SQLite file that exists, is writable here and whose schema is at
    `HEAD`: read with the standard library alone (False on any doubt: the caller then
    takes the engine path, which migrates or says what is wrong)."""
    path = sqlite_path(url)
    if path is None or not path.is_file() or readonly_reason(url) is not None:
        return False
    try:
        from urllib.parse import quote

        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error:
        return False
    try:
        conn.execute("PRAGMA busy_timeout=60000")
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return row is not None and row[0] == HEAD


def _sqlite_setup(engine: Engine, readonly: bool = False) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        _prepare(dbapi_conn, readonly)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # writers take the lock up front (a deferred read->write upgrade fails at once with
        # SQLITE_BUSY instead of waiting); readers do not block anyone in WAL mode
        write = conn.get_execution_options().get("orch_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _wal(cur: Any) -> None:
    """Switch to WAL. On a new file another process may be creating the schema: the
    switch needs the file to itself and SQLite reports "locked" at once instead of
    waiting, so wait here (up to a minute)."""
    import time

    deadline = time.monotonic() + 60
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def first_line(exc: BaseException) -> str:
    """The driver's own message, first line only (no SQL, no background links)."""
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return lines[0] if lines else type(orig).__name__


def current_revision(engine: Engine) -> str | None:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot connect to the metadata store {_mask(str(engine.url))}: {first_line(exc)}"
        ) from None
    with conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:
            return None  # a new database: no schema yet


def migrate(engine: Engine, readonly: bool = False) -> None:
    """Upgrade the schema to head (no-op when it is there already). A read-only store
    cannot be upgraded: one at another revision is refused, naming it."""
    revision = current_revision(engine)
    if revision == HEAD:
        return
    if readonly:
        where = describe(str(engine.url))
        if revision is None:
            raise StoreError(f"no metadata store at {where} (it is read-only here)")
        raise StoreError(
            f"the metadata store {where} is read-only and its schema is at revision "
            f"{revision}, not {HEAD}: open it once where it is writable to upgrade it"
        )
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    try:
        with engine.connect().execution_options(orch_write=True) as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(74210581)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot migrate the metadata store {_mask(str(engine.url))}: {first_line(exc)}"
        ) from None
