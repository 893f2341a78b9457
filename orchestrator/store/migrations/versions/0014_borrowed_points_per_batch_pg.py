"""borrowed metric points per batch on PostgreSQL

PostgreSQL: the row trigger tr_step_runs_cached_insert_summary is dropped; the writers of
step runs merge a batch's borrowed points in one statement instead (store/borrowed.py),
as on SQLite since 0013. The trigger function stays (the trigger of a step run updated to
cached still calls it). The summary rows themselves are unchanged. SQLite: nothing
changes.

Revision ID: 0014
Revises: 0013
"""

import importlib

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_TRIGGER = "tr_step_runs_cached_insert_summary"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER} ON step_runs")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        m0010 = importlib.import_module("orchestrator.store.migrations.versions.0010_metric_summary")
        (ddl,) = [s for s in m0010._PG_TRIGGERS if _TRIGGER in s]
        op.execute(ddl)
