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
#   as the orch role and force-dropped afterwards; its SQLAlchemy URL;
# * `pg_other_url`: a second one, for a test comparing two databases.
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
    yield from _fresh_database(pg_server)


@pytest.fixture
def pg_other_url(pg_server: str) -> Iterator[str]:
    yield from _fresh_database(pg_server)


def _fresh_database(pg_server: str) -> Iterator[str]:
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


# =====================================================================================
# Object storage fixtures (ORCH_ARTIFACTS=s3://...). Keep this section self-contained.
#
# * `s3_server` (session): runs `bash scripts/start-s3.sh` (moto's S3 server on loopback;
#   idempotent, under a lock) and returns its endpoint URL, `http://127.0.0.1:PORT`;
# * `s3_bucket`: a fresh, uniquely named bucket for one test, emptied and deleted
#   afterwards; the test's process environment points boto3 at the server with test
#   credentials (`S3Bucket.env` holds the same variables, for subprocesses), and
#   `S3Bucket.url` is the `s3://BUCKET/artifacts` location to give ORCH_ARTIFACTS.
# =====================================================================================
import dataclasses  # noqa: E402
import sys  # noqa: E402

_S3_SCRIPT = _PG_SCRIPT.with_name("start-s3.sh")


@pytest.fixture(scope="session")
def s3_server() -> str:
    proc = subprocess.run(
        ["bash", str(_S3_SCRIPT)],
        cwd=_S3_SCRIPT.parents[1],
        env={**os.environ, "ORCH_S3_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{_S3_SCRIPT.name} exited {proc.returncode}\n--- stdout ---\n{proc.stdout}"
            f"\n--- stderr ---\n{proc.stderr}",
            pytrace=False,
        )
    url = proc.stdout.strip().splitlines()[-1]
    assert url.startswith("http://"), proc.stdout
    return url


@dataclasses.dataclass
class S3Bucket:
    name: str
    endpoint: str
    env: dict[str, str]  # what a subprocess needs to reach it (credentials, endpoint)
    client: Any  # a boto3 S3 client, for tests to look at (or damage) objects

    @property
    def url(self) -> str:
        return f"s3://{self.name}/artifacts"

    def keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    import boto3

    env = {
        "AWS_ACCESS_KEY_ID": "orchtestkey" + uuid.uuid4().hex[:8],
        "AWS_SECRET_ACCESS_KEY": "orchtestsecret" + uuid.uuid4().hex,
        "AWS_DEFAULT_REGION": "us-east-1",
        "ORCH_S3_ENDPOINT": s3_server,
    }
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3", endpoint_url=s3_server)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"orch-test-{worker}-{uuid.uuid4().hex[:12]}".lower()
    client.create_bucket(Bucket=name)
    try:
        yield S3Bucket(name, s3_server, env, client)
    finally:
        _empty_bucket(client, name)


def _empty_bucket(client: Any, name: str) -> None:
    for up in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=obj["Key"])
    client.delete_bucket(Bucket=name)


# ============================ end of object storage fixtures ===========================
