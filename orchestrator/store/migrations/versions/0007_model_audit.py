"""model registry audit trail, aliases and running servers

model_events: every registration, stage change and alias move, with who, when and why
(existing versions get their `registered` event from their own row).
model_aliases: named pointers to versions. model_servers: running `orch serve` processes.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import orchestrator.store.schema

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _utc() -> orchestrator.store.schema.UTCDateTime:
    return orchestrator.store.schema.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "model_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("from_value", sa.String(length=200), nullable=True),
        sa.Column("to_value", sa.String(length=200), nullable=True),
        sa.Column("actor", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("step", sa.String(length=200), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_events")),
    )
    with op.batch_alter_table("model_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_events_name"), ["name"], unique=False)
    op.execute(
        "INSERT INTO model_events (name, version, kind, from_value, to_value, actor, reason,"
        " run_id, step, created_at) SELECT name, version, 'registered', NULL, 'candidate',"
        " CASE WHEN step IS NULL THEN 'api' ELSE 'deploy' END, reason, run_id, step,"
        " created_at FROM model_versions ORDER BY id"
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("name", "alias", name=op.f("pk_model_aliases")),
    )
    op.create_table(
        "model_servers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("selector", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("heartbeat_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_servers")),
    )
    with op.batch_alter_table("model_servers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_servers_name"), ["name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_servers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_servers_name"))
    op.drop_table("model_servers")
    op.drop_table("model_aliases")
    with op.batch_alter_table("model_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_events_name"))
    op.drop_table("model_events")
