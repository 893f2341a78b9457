"""`orch run` on SQLite stores that are not at the schema head, and on one that is.

A file at the head is opened without SQLAlchemy (store/db.py `sqlite_at_head`); any
other file still goes through the engine, which migrates it first.
"""

from __future__ import annotations

import sqlite3

from alembic import command
from alembic.config import Config
from orchtest import Orch, states
from sqlalchemy import create_engine

from orchestrator.store.db import _MIGRATIONS, HEAD

STEPS = ["ingest", "validate", "features", "train", "evaluate", "deploy"]


def _revision(orch: Orch) -> str:
    with sqlite3.connect(orch.db) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_an_old_schema_store_is_migrated_by_a_run(orch: Orch) -> None:
    orch.home.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{orch.db}")
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0011")
    engine.dispose()
    assert _revision(orch) == "0011"

    res = orch("run", "classification", "--json")
    assert res.code == 0, res.describe()
    assert states(res.json) == dict.fromkeys(STEPS, "succeeded")
    assert _revision(orch) == HEAD
    again = orch("run", "classification", "--json")  # at the head now: the raw path
    assert again.code == 0, again.describe()
    assert states(again.json) == dict.fromkeys(STEPS, "cached")


def test_a_store_at_the_head_records_cached_runs_readable_by_every_command(orch: Orch) -> None:
    assert orch("run", "classification").code == 0
    res = orch("run", "classification", "--json")
    assert res.code == 0, res.describe()
    run_id = res.json["run_id"]
    shown = orch("show", run_id, "--json")
    assert shown.code == 0, shown.describe()
    assert shown.json["status"] == "succeeded", shown.describe()
    listed = orch("runs", "--json")
    assert listed.code == 0 and run_id in listed.out, listed.describe()
