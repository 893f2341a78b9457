"""experiment tracking

run_metrics: metrics steps logged or returned (series points carry a position).
run_params: parameters steps logged.
run_artifacts: artifacts steps logged, by name.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

import orchestrator.store.schema

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["runs.id"], name=op.f(f"fk_{table}_run_id_runs"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "run_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column(
            "logged_at", orchestrator.store.schema.UTCDateTime(timezone=True), nullable=False
        ),
        _run_fk("run_metrics"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_metrics")),
    )
    op.create_index("ix_run_metrics_run_id_name", "run_metrics", ["run_id", "name"])
    op.create_index("ix_run_metrics_name", "run_metrics", ["name"])
    op.create_table(
        "run_params",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        _run_fk("run_params"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_params")),
    )
    op.create_index("ix_run_params_run_id", "run_params", ["run_id"])
    op.create_table(
        "run_artifacts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        _run_fk("run_artifacts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_artifacts")),
    )
    op.create_index("ix_run_artifacts_run_id", "run_artifacts", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_artifacts_run_id", table_name="run_artifacts")
    op.drop_table("run_artifacts")
    op.drop_index("ix_run_params_run_id", table_name="run_params")
    op.drop_table("run_params")
    op.drop_index("ix_run_metrics_name", table_name="run_metrics")
    op.drop_index("ix_run_metrics_run_id_name", table_name="run_metrics")
    op.drop_table("run_metrics")
