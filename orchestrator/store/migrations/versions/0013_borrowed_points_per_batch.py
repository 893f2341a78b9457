"""borrowed metric points per batch on SQLite

SQLite: the row trigger tr_step_runs_cached_insert_summary is dropped; the writers of
step runs merge a batch's borrowed points in one statement instead (store/borrowed.py).
The summary rows themselves are unchanged. PostgreSQL: nothing changes.

Revision ID: 0013
Revises: 0012
"""

import importlib

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TRIGGER = "tr_step_runs_cached_insert_summary"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        m0010 = importlib.import_module("orchestrator.store.migrations.versions.0010_metric_summary")
        (ddl,) = [s for s in m0010._SQLITE_TRIGGERS if _TRIGGER in s]
        op.execute(ddl)
