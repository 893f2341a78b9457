"""Fixtures shared by every test folder (contract, integration, e2e, unit)."""

from __future__ import annotations

# =====================================================================================
# PostgreSQL fixtures (store / PostgreSQL tests: tests/contract/test_store.py,
# tests/integration/test_postgres.py). Keep this section self-contained.
#
# * `pg_server` (session): runs `bash scripts/start-postgres.sh postgres` once per test
#   session (once per pytest-xdist worker; the script is idempotent and takes a lock)
#   and returns the server's base URL, `postgresql+psycopg://orch:orch@127.0.0.1:PORT`;
# * `pg_url`: a fresh, uniquely named, empty database on that server for one test, made
#   as the orch role and force-dropped afterwards; its SQLAlchemy URL.
# A real server, never a mock: the script apt-installs and starts PostgreSQL if needed.
# =====================================================================================
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_PG_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "start-postgres.sh"


def pg_conninfo(url: str) -> str:
    """A libpq/psycopg connection string for a SQLAlchemy `postgresql+psycopg://` URL."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pg_admin(base_url: str) -> Any:
    """An autocommit connection as the orch role to the server's `postgres` database."""
    import psycopg

    return psycopg.connect(pg_conninfo(f"{base_url}/postgres"), autocommit=True)


@pytest.fixture(scope="session")
def pg_server() -> str:
    proc = subprocess.run(
        ["bash", str(_PG_SCRIPT), "postgres"],
        cwd=_PG_SCRIPT.parents[1],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{_PG_SCRIPT.name} exited {proc.returncode}\n--- stdout ---\n{proc.stdout}"
            f"\n--- stderr ---\n{proc.stderr}",
            pytrace=False,
        )
    url = proc.stdout.strip().splitlines()[-1]
    base, _, db = url.rpartition("/")
    assert base.startswith("postgresql+psycopg://") and db == "postgres", proc.stdout
    with pg_admin(base) as conn:  # the server answers, and the orch role may log in
        assert conn.execute("select current_user").fetchone() == ("orch",)
    return base


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    from psycopg import sql

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"orch_test_{worker}_{uuid.uuid4().hex[:12]}"
    with pg_admin(pg_server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{pg_server}/{name}"
    finally:
        _drop_database(pg_server, name)


def _drop_database(pg_server: str, name: str) -> None:
    """Drop a test database. FORCE cannot terminate an autovacuum worker that happens to be
    in it (that takes a superuser), so wait for the worker to finish and try again."""
    import time

    import psycopg
    from psycopg import sql

    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    for attempt in range(40):
        try:
            with pg_admin(pg_server) as conn:
                conn.execute(drop)
            return
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
            if attempt == 39:
                raise
            time.sleep(0.25)


# ============================ end of PostgreSQL fixtures ==============================
