"""metric summaries per run

run_metric_summary: per run and metric name, the run's last point (`value`, and `last_id`,
the `run_metrics` row it came from) and how many points it has (`points`), counting the
run's own rows and those of the steps it took from the cache. Indexed by (name, value):
sorting the runs table by a metric is an index scan. Kept by triggers (an insert into
run_metrics; a step run inserted or updated as `cached`), so every write path keeps it;
backfilled here from the rows already stored.
run_params: indexed by name (whether a filter's name is a logged parameter: one probe).
step_runs: a partial index of the cached ones (the rows a cache hit borrows, found fast).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# a candidate point (`excluded`) replaces the stored one when it was logged later
_MERGE = """ON CONFLICT (run_id, name) DO UPDATE SET
  value = CASE WHEN excluded.last_id > run_metric_summary.last_id
    THEN excluded.value ELSE run_metric_summary.value END,
  last_id = CASE WHEN excluded.last_id > run_metric_summary.last_id
    THEN excluded.last_id ELSE run_metric_summary.last_id END,
  points = run_metric_summary.points + excluded.points"""

_INSERT = "INSERT INTO run_metric_summary (run_id, name, value, last_id, points)"

# the points a cached step brings: the rows its computing run logged for that step
_BORROWED = """SELECT {run} AS run_id, g.name, v.value, g.last_id, g.points
FROM (SELECT name, max(id) AS last_id, count(*) AS points FROM run_metrics
      WHERE run_id = {source} AND step = {step} AND run_id <> {run} GROUP BY name) AS g
JOIN run_metrics v ON v.id = g.last_id WHERE true"""

_SQLITE_BORROWED = _BORROWED.format(
    run="NEW.run_id", source="json_extract(NEW.reason, '$.from_run')", step="NEW.name"
)
_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER tr_run_metrics_summary AFTER INSERT ON run_metrics BEGIN
{_INSERT} VALUES (NEW.run_id, NEW.name, NEW.value, NEW.id, 1)
{_MERGE};
END""",
    f"""CREATE TRIGGER tr_step_runs_cached_insert_summary AFTER INSERT ON step_runs
WHEN NEW.state = 'cached' BEGIN
{_INSERT} {_SQLITE_BORROWED}
{_MERGE};
END""",
    f"""CREATE TRIGGER tr_step_runs_cached_update_summary AFTER UPDATE OF state ON step_runs
WHEN NEW.state = 'cached' AND OLD.state IS NOT 'cached' BEGIN
{_INSERT} {_SQLITE_BORROWED}
{_MERGE};
END""",
]

_PG_BORROWED = _BORROWED.format(
    run="NEW.run_id", source="(NEW.reason ->> 'from_run')", step="NEW.name"
)
_PG_FUNCTIONS = [
    f"""CREATE FUNCTION run_metric_summary_points() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{_INSERT} SELECT g.run_id, g.name, v.value, g.last_id, g.points
FROM (SELECT run_id, name, max(id) AS last_id, count(*) AS points FROM new_points
      GROUP BY run_id, name) AS g
JOIN new_points v ON v.id = g.last_id
{_MERGE};
RETURN NULL;
END $$""",
    f"""CREATE FUNCTION run_metric_summary_borrowed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{_INSERT} {_PG_BORROWED}
{_MERGE};
RETURN NULL;
END $$""",
]

_PG_TRIGGERS = [
    "CREATE TRIGGER tr_run_metrics_summary AFTER INSERT ON run_metrics "
    "REFERENCING NEW TABLE AS new_points FOR EACH STATEMENT "
    "EXECUTE PROCEDURE run_metric_summary_points()",
    "CREATE TRIGGER tr_step_runs_cached_insert_summary AFTER INSERT ON step_runs "
    "FOR EACH ROW WHEN (NEW.state = 'cached') EXECUTE PROCEDURE run_metric_summary_borrowed()",
    "CREATE TRIGGER tr_step_runs_cached_update_summary AFTER UPDATE OF state ON step_runs "
    "FOR EACH ROW WHEN (NEW.state = 'cached' AND OLD.state IS DISTINCT FROM 'cached') "
    "EXECUTE PROCEDURE run_metric_summary_borrowed()",
]

_TRIGGERS = {
    "tr_run_metrics_summary": "run_metrics",
    "tr_step_runs_cached_insert_summary": "step_runs",
    "tr_step_runs_cached_update_summary": "step_runs",
}


def _backfill(source: str) -> str:
    """Every run's points (its own and its cached steps'), summarised per name."""
    return f"""{_INSERT}
SELECT g.run_id, g.name, v.value, g.last_id, g.points
FROM (SELECT run_id, name, max(id) AS last_id, count(*) AS points FROM (
        SELECT run_id, name, id FROM run_metrics
        UNION ALL
        SELECT st.run_id, m.name, m.id FROM step_runs st
        JOIN run_metrics m ON m.run_id = {source} AND m.step = st.name
        WHERE st.state = 'cached' AND {source} <> st.run_id
      ) AS p GROUP BY run_id, name) AS g
JOIN run_metrics v ON v.id = g.last_id"""


def upgrade() -> None:
    op.create_table(
        "run_metric_summary",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_metric_summary_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "name", name=op.f("pk_run_metric_summary")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    source = "(st.reason ->> 'from_run')" if postgres else "json_extract(st.reason, '$.from_run')"
    op.execute(_backfill(source))
    op.create_index("ix_run_metric_summary_name_value", "run_metric_summary", ["name", "value"])
    op.create_index("ix_run_params_name", "run_params", ["name"])
    cached = sa.text("state = 'cached'")
    op.create_index(
        "ix_step_runs_cached",
        "step_runs",
        ["run_id"],
        postgresql_where=cached,
        sqlite_where=cached,
    )
    for statement in (_PG_FUNCTIONS + _PG_TRIGGERS) if postgres else _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for trigger, table in _TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + (f" ON {table}" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS run_metric_summary_points()")
        op.execute("DROP FUNCTION IF EXISTS run_metric_summary_borrowed()")
    op.drop_index("ix_step_runs_cached", table_name="step_runs")
    op.drop_index("ix_run_params_name", table_name="run_params")
    op.drop_index("ix_run_metric_summary_name_value", table_name="run_metric_summary")
    op.drop_table("run_metric_summary")
