"""Database engines and migrations for the metadata store.

`connect(url)` makes a SQLAlchemy engine for any URL. For SQLite it sets WAL, a busy
timeout and `BEGIN IMMEDIATE` transactions, so two processes writing at once queue
instead of failing with "database is locked". `migrate(engine)` brings the schema to the
Alembic head; it is a single cheap query when the schema is already current.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.errors import StoreError

HEAD = "0005"
_MIGRATIONS = Path(__file__).parent / "migrations"


def _mask(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def connect(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
            _sqlite_setup(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot open metadata store {_mask(url)}: {exc}") from None
    return engine


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=60000")
        _wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

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
    import sqlite3
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


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head (no-op when it is there already)."""
    if current_revision(engine) == HEAD:
        return
    from alembic import command
    from alembic.config import Config

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
