"""Tables of the metadata store (SQLAlchemy Core). Alembic migrations own their evolution.

Times are UTC. JSON columns hold plain JSON (no pickles). Nothing here assumes SQLite.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        # a TIMESTAMPTZ takes the instant as is; SQLite stores text, naive UTC
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


pipelines = Table(
    "pipelines",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("ref", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(200), nullable=False, index=True),
    Column("target", Text, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("params", JSON, nullable=False),
    Column("executor", String(40), nullable=False),
    Column("started_at", UTCDateTime, nullable=False, index=True),
    Column("ended_at", UTCDateTime),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("resumed_from", String(32)),
    Column("trigger", JSON),
    Column("error", Text),
    Column("cancel_requested_at", UTCDateTime),
)
"""`cancel_requested_at`: when someone asked the run to stop (`orch cancel`, the UI); the
engine running it polls it and ends the run `cancelled`."""

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("duration", Float),
    Column("cache_key", String(64)),
    Column("reason", JSON),
    Column("params", JSON),
    Column("inputs", JSON),
    Column("outputs", JSON),
    Column("error", Text),
    Column("log", Text),
    UniqueConstraint("run_id", "name"),
    Index(
        "ix_step_runs_cached",
        "run_id",
        postgresql_where=text("state = 'cached'"),
        sqlite_where=text("state = 'cached'"),
    ),
)
"""`ix_step_runs_cached`: the steps runs took from the cache (a partial index: the tracked
rows they borrow are found without reading every step run)."""

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(200), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("duration", Float),
    Column("error", Text),
    Column("traceback", Text),
    Column("log", Text),
    UniqueConstraint("run_id", "step", "attempt"),
)
"""Every attempt of a step run that started on an executor (cached and skipped steps make
none): `running` when it starts, then `succeeded`, `failed` (with its own error,
traceback and log) or `interrupted`. The step run keeps the last attempt's outcome."""

artifacts = Table(
    "artifacts",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("serializer", String(20), nullable=False),
    Column("type", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("run_id", String(32)),
    Column("step", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("inline", Text),  # an inline artifact's bytes (JSON text); NULL for a file
)

cache_entries = Table(
    "cache_entries",
    metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("pipeline", String(200), nullable=False),
    Column("step", String(200), nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("code", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("run_id", String(32)),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_cache_entries_pipeline_step", "pipeline", "step"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("stage", String(20), nullable=False),
    Column("artifact_hash", String(64), nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("run_id", String(32)),
    Column("step", String(200)),
    Column("params", JSON, nullable=False),
    Column("data_hash", String(64)),
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("name", "version"),
)

run_metrics = Table(
    "run_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("position", Integer),
    Column("value", Float, nullable=False),
    Column("logged_at", UTCDateTime, nullable=False),
    Index("ix_run_metrics_run_id_name", "run_id", "name"),
    Index("ix_run_metrics_name", "name"),
)
"""Metrics a step logged (or returned), in logging order (`id`); `position` is the series
step given to `log_metric(..., step=N)`, NULL for a single value. A run's value of a metric
is its last logged point."""

run_metric_summary = Table(
    "run_metric_summary",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("value", Float, nullable=False),
    Column("last_id", Integer, nullable=False),
    Column("points", Integer, nullable=False),
    Index("ix_run_metric_summary_name_value", "name", "value"),
)
"""Per run and metric name: the run's value of the metric (its last point: `value`, from
the `run_metrics` row `last_id`) and its number of points, counting the run's own rows and
those of the steps it took from the cache (the rows the computing run logged for them).
Kept by database triggers (migration 0010) on every insert into `run_metrics` and every
step run updated to `cached`; for step runs inserted as `cached` the writers of step runs
merge a batch's cached rows in one statement (store/borrowed.py; since migration 0013 on
SQLite, 0014 on PostgreSQL: a row trigger did it before). A migration that rebuilds
`run_metrics` or `step_runs` on SQLite (batch mode copies the table) must create the
triggers again."""

run_params = Table(
    "run_params",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("data", JSON),
    Index("ix_run_params_run_id", "run_id"),
    Index("ix_run_params_name", "name"),
)
"""Parameters a step logged with `log_params`: `data` is the canonical JSON value (column
names are unique per meaning across tables: the hot path encodes by name)."""

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("step", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_run_artifacts_run_id", "run_id"),
)
"""Artifacts a step logged with `log_artifact`, by name (their records are in `artifacts`)."""

claims = Table(
    "claims",
    metadata,
    Column("kind", String(40), primary_key=True),
    Column("key", String(400), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
)
"""Work that several processes may try to take (a schedule tick, an event): the primary
key makes the first insert win on every database, so each item is taken exactly once."""

schedule_state = Table(
    "schedule_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("cursor", UTCDateTime),
    Column("paused", Boolean, nullable=False, default=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
"""Per schedule: the last scheduled time handled (the evaluator's cursor) and pause state."""

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, index=True),
    Column("data", JSON, nullable=False),
    Column("idempotency_key", String(400), unique=True),
    Column("source", String(200), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("reason", Text),
    Column("run_id", String(32)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("handled_at", UTCDateTime),
)
"""Events (external, sensor, drift, metric) are written here before they are acknowledged;
the daemon handles each once (status pending -> started | dropped)."""

monitor_checks = Table(
    "monitor_checks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("monitor", String(200), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("model", String(200), nullable=False),
    Column("version", Integer),
    Column("source", Text, nullable=False),
    Column("position", Integer),
    Column("rows", Integer, nullable=False),
    Column("drifted", Boolean, nullable=False),
    Column("value", Float),
    Column("report_hash", String(64)),
    Column("summary", Text, nullable=False),
    Column("event_id", Integer),
    Column("created_at", UTCDateTime, nullable=False),
)
"""Every check a drift or metric monitor ran: the batch it read (`source`; `position` is
the request log's byte offset after the batch), the production version it judged, the
verdict (`drifted` also means "metric below threshold"), the metric value, the stored
report's artifact hash, and the event it emitted."""

launches = Table(
    "launches",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("source", String(200), nullable=False),
    Column("key", String(400), nullable=False),
    Column("args", JSON, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("owner", String(200), nullable=False),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
"""Runs the daemon decided to start (a tick, an event, a file sensor), recorded in the same
transaction as the claim, with the `orch run` arguments and a run id fixed in advance:
`queued` (waiting for the previous run of its schedule), `pending` (to start now),
`launched` (child process started), `done` (the run exists) or `failed` (it never
started). A daemon that dies between claim and launch leaves a pending row that the next
pass starts; the fixed run id makes a double start impossible."""

model_events = Table(
    "model_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("from_value", String(200)),
    Column("to_value", String(200)),
    Column("actor", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("run_id", String(32)),
    Column("step", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
)
"""The registry's audit trail, only ever appended to: `registered` (to `candidate`),
`stage` (from -> to stage), `alias` (an alias moved from version -> to version; `to_value`
null when removed). `actor` is who did it (`cli`, `ui`, `deploy`, `api`); a deploy step's
event names its run and step."""

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
"""Named pointers to model versions (`champion`, `staging`, any name): one version each."""

model_servers = Table(
    "model_servers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, index=True),
    Column("selector", String(64), nullable=False),
    Column("version", Integer),
    Column("url", Text, nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)
"""Running prediction servers: which model and selector (`production`, an alias or a
version) each serves, the version it answers with, and a heartbeat renewed every poll;
a server whose heartbeat is old is gone."""

source_texts = Table(
    "source_texts",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("text", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
"""Source files as they were when a model version was registered, each text stored once
under the hash of its content (many versions share one file's unchanged text)."""

model_sources = Table(
    "model_sources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_model_sources_name_version", "name", "version"),
)
"""The project's source files of a model version's run (`path` relative to the project
root), by the hash of their text in `source_texts`: what `orch reproduce` rebuilds from."""

run_environments = Table(
    "run_environments",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("python", String(40), nullable=False),
    Column("packages", JSON, nullable=False),
    Column("cwd", Text, nullable=False),
    Column("root", Text),
    Column("created_at", UTCDateTime, nullable=False),
)
"""Where a run that registered a model version ran: the Python version, every installed
distribution's version (`{name: version}`), the working folder its relative paths are
read from and its project root (null for a built-in pipeline)."""
