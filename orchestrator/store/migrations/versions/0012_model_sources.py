"""code snapshots of model versions and the environment of their runs

source_texts: source files by the hash of their text, each stored once.
model_sources: which files (by path in the project) a model version was built from.
run_environments: Python, package versions, working folder and project root of a run
that registered a model version.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

import orchestrator.store.schema

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _utc() -> orchestrator.store.schema.UTCDateTime:
    return orchestrator.store.schema.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "source_texts",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name=op.f("pk_source_texts")),
    )
    op.create_table(
        "model_sources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_sources")),
    )
    op.create_index(
        "ix_model_sources_name_version", "model_sources", ["name", "version"], unique=False
    )
    op.create_table(
        "run_environments",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("python", sa.String(length=40), nullable=False),
        sa.Column("packages", sa.JSON(), nullable=False),
        sa.Column("cwd", sa.Text(), nullable=False),
        sa.Column("root", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_environments_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_environments")),
    )


def downgrade() -> None:
    op.drop_table("run_environments")
    op.drop_index("ix_model_sources_name_version", table_name="model_sources")
    op.drop_table("model_sources")
    op.drop_table("source_texts")
