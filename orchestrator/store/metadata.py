"""The metadata store: one facade over the store's repositories, one per kind of record.

    runs            runs and step runs (store/runs.py)
    cache           the cache index (store/cache_index.py)
    artifact_index  artifact records and their collection (store/artifact_index.py)
    writer          the engine's batches and hot path (store/batch.py)
    claims          claims and launches (store/claims.py)
    schedules       schedule cursors and pauses (store/schedules.py)
    events          events (store/events.py)
    checks          monitor checks (store/checks.py)
    tracking        what runs tracked: metrics, params, artifacts (store/tracking.py)

Model versions are read and written by `StoreRegistry` (store/registry.py); the UI's
reads by store/browse.py. The methods below keep the store's historical names and
signatures, each a one-line delegation, so callers need not know the repositories.

The engine writes through `write(batch)`: one transaction per scheduling round, holding
every state change of that round, so a finished step is recorded before any step that
depends on it starts. On PostgreSQL the engine's writes (batches, a run's creation and
end) and cache reads go through the pipelined hot path (store/pgpath.py): a relaxed
round is sent and not waited for (store/pgsent.py: it commits after every round before
it, and none after a failed one does; `settle` waits), everything else is one round trip
(carrying the rounds sent before it). Reads return plain dicts. Any SQLAlchemy URL works.

Read-only stores: `MetadataStore(url, readonly=None)` (the default) opens a SQLite file
that cannot be written here (a read-only mount, say) read-only, and any other store as
usual; `readonly=True` always opens read-only (on PostgreSQL too). On a read-only store
reads work and every write raises one `StoreError` naming the database, before it starts.

A writable SQLite file already at the schema head opens without SQLAlchemy: the engine,
and each repository, is made when first used, and what a cached run does (its run row
created and ended, step runs written, cache entries read, a cancel request polled) goes
through the raw sqlite3 hot path (store/fastpath.py). Any other store (a new or older
SQLite file, which is migrated; PostgreSQL; read-only) makes its engine at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from orchestrator.errors import StoreError
from orchestrator.store.base import Db, Row, canonical_json, now, run_rows
from orchestrator.store.batch import Batch, BatchWriter
from orchestrator.store.db import (
    connect,
    describe,
    first_line,
    migrate,
    open_sqlite,
    readonly_reason,
    sqlite_at_head,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from orchestrator.artifacts.store import ArtifactRef
    from orchestrator.store.artifact_index import ArtifactIndex
    from orchestrator.store.cache_index import CacheIndex
    from orchestrator.store.checks import CheckRepository
    from orchestrator.store.claims import ClaimRepository
    from orchestrator.store.events import EventRepository
    from orchestrator.store.runs import RunRepository
    from orchestrator.store.schedules import ScheduleRepository
    from orchestrator.store.tracking import TrackingRepository

__all__ = ["Batch", "MetadataStore", "canonical_json", "now"]


class MetadataStore:
    def __init__(
        self, url: str, *, engine: Engine | None = None, readonly: bool | None = None
    ) -> None:
        self.url = url
        why = readonly_reason(url) if readonly is None else None
        self.readonly = bool(why) if readonly is None else readonly
        host = socket.gethostname()
        where, why = describe(url), why or "opened read-only"
        if engine is None and not self.readonly and sqlite_at_head(url):
            make = functools.partial(connect, url, readonly=False)
            opener = functools.partial(open_sqlite, url)
            self.db = Db.lazy(make, "sqlite", host, False, where, why, opener=opener)
        else:
            engine = engine or connect(url, readonly=self.readonly)
            self.db = Db(engine, host, self.readonly, where, why)
            self._migrate(engine)
        self.writer = BatchWriter(self.db, lambda: self.cache)

    def _migrate(self, engine: Engine) -> None:
        from sqlalchemy.exc import OperationalError

        try:
            migrate(engine, readonly=self.readonly)
        except OperationalError as exc:
            raise StoreError(f"cannot open metadata store: {exc.orig}") from None

    @property
    def engine(self) -> Engine:
        return self.db.engine

    # the repositories, each made when first used (their modules load SQLAlchemy)
    @functools.cached_property
    def runs(self) -> RunRepository:
        from orchestrator.store.runs import RunRepository

        return RunRepository(self.db)

    @functools.cached_property
    def cache(self) -> CacheIndex:
        from orchestrator.store.cache_index import CacheIndex

        return CacheIndex(self.db)

    @functools.cached_property
    def artifact_index(self) -> ArtifactIndex:
        from orchestrator.store.artifact_index import ArtifactIndex

        return ArtifactIndex(self.db)

    @functools.cached_property
    def claims(self) -> ClaimRepository:
        from orchestrator.store.claims import ClaimRepository

        return ClaimRepository(self.db)

    @functools.cached_property
    def schedules(self) -> ScheduleRepository:
        from orchestrator.store.schedules import ScheduleRepository

        return ScheduleRepository(self.db, self.runs)

    @functools.cached_property
    def events(self) -> EventRepository:
        from orchestrator.store.events import EventRepository

        return EventRepository(self.db)

    @functools.cached_property
    def checks(self) -> CheckRepository:
        from orchestrator.store.checks import CheckRepository

        return CheckRepository(self.db)

    @functools.cached_property
    def tracking(self) -> TrackingRepository:
        from orchestrator.store.tracking import TrackingRepository

        return TrackingRepository(self.db)

    def tx(self) -> contextlib.AbstractContextManager[Connection]:
        """A write transaction (on SQLite it takes the write lock at BEGIN)."""
        return self.db.tx()

    def fast(self) -> Any:
        """The engine thread's hot path (see store/batch.py)."""
        return self.writer.hot()

    def close(self) -> None:
        self.writer.close()
        if self.db.has_engine:
            self.engine.dispose()

    # -- runs and step runs ---------------------------------------------------------------
    def write(self, batch: Batch, fast: bool = False) -> None:
        """Record a batch in one transaction (`fast`: through the hot path, if any)."""
        self.writer.write(batch, fast)

    def writes_unwaited(self) -> bool:
        """Whether `write(fast=True)` returns once a batch is sent, before its commit (so
        more, smaller batches cost the engine no more waiting)."""
        return bool(getattr(self.writer.hot(), "relaxed", False))

    def settle(self) -> None:
        """Wait until every batch written is committed (on PostgreSQL `write` may return
        once a batch is sent: store/pgsent.py); a batch that failed raises `StoreError`."""
        self.writer.settle()

    def write_rows(self, conn: Connection, batch: Batch) -> None:
        self.writer.write_rows(conn, batch)

    def create_run(
        self, run_id: str, pipeline: str, target: str, params: dict[str, Any], executor: str,
        resumed_from: str | None = None, trigger: dict[str, Any] | None = None,
        fresh: bool = False,
    ) -> None:  # fmt: skip
        """Record the pipeline (name -> how to load it) and a new running run, in one go.
        `fresh`: the id was just drawn at random, so no other run has it (on PostgreSQL
        the creation is then sent and not waited for: store/pgpath.py)."""
        args = (run_id, pipeline, target, params, executor, resumed_from, trigger)
        rows = run_rows(self.db.host, *args)
        self.db.refuse_writes()
        hot = self._runs_path()
        if hot is not None:
            hot.create_run(*rows, fresh=fresh)
            return
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError

        try:
            self.runs.insert(*rows)
        except IntegrityError:
            raise StoreError(f"run {run_id} already exists; it cannot start twice") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot record run {run_id}: {first_line(exc)}") from None

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        self.db.refuse_writes()
        hot = self._runs_path()
        if hot is not None:
            hot.finish_run(run_id, status, error)
            return
        self.runs.finish(run_id, status, error)

    def _runs_path(self) -> Any:
        """The hot path where it records runs too (PostgreSQL: a round trip each; SQLite:
        no SQLAlchemy statement to build), else None."""
        if self.db.dialect not in ("postgresql", "sqlite"):
            return None
        hot = self.fast()
        return hot if hasattr(hot, "create_run") else None

    def list_runs(
        self, limit: int = 20, pipeline: str | None = None, status: str | None = None
    ) -> list[Row]:
        return self.runs.list(limit, pipeline, status)

    def get_run(self, run_id: str) -> Row:
        return self.runs.get(run_id)

    def step_runs(self, run_id: str) -> list[Row]:
        return self.runs.steps(run_id)

    def attempts(self, run_id: str, step: str | None = None) -> list[Row]:
        """Every attempt of the run's step runs (or of one step), oldest first per step."""
        return self.runs.attempts(run_id, step)

    def keep_logs(self, run_id: str, logs: dict[str, str]) -> None:
        """Logs of step runs that ended interrupted without one, recorded (see runs.py)."""
        self.runs.keep_logs(run_id, logs)

    def request_cancel(self, run_id: str) -> bool:
        """Ask a running run to stop (its engine polls this); False if it is not running."""
        return self.runs.request_cancel(run_id)

    def cancel_requested(self, run_id: str) -> bool:
        hot = self._runs_path()
        if hot is not None and hasattr(hot, "cancel_requested"):
            return hot.cancel_requested(run_id)  # type: ignore[no-any-return]
        return self.runs.cancel_requested(run_id)

    def step_states(self, run_id: str) -> list[Row]:
        """The run's step runs as `step_runs` lists them, with only name, state and log."""
        hot = self._runs_path()
        if hot is not None and hasattr(hot, "step_states"):
            return hot.step_states(run_id)  # type: ignore[no-any-return]
        return [
            {"name": r["name"], "state": r["state"], "log": r.get("log")}
            for r in self.runs.steps(run_id)
        ]

    def existing_runs(self, run_ids: Iterable[str]) -> dict[str, str]:
        return self.runs.existing(run_ids)

    # -- cache index and artifacts --------------------------------------------------------
    def cache_get(self, key: str, fast: bool = False) -> Row | None:
        """The cache entry for a key (outputs and run id), or None."""
        if fast:
            return self.fast().cache_get(key)  # type: ignore[no-any-return]
        return self.cache.get(key)

    def cache_row(self, conn: Connection, key: str) -> Row | None:
        return self.cache.row(conn, key)

    def cache_history(
        self, pipeline: str, step: str, limit: int = 50, fast: bool = False
    ) -> list[Row]:
        """A step's most recent cache entries, oldest first (what `explain` compares with)."""
        if fast:
            return self.fast().history(pipeline, step, limit)  # type: ignore[no-any-return]
        return self.cache.history(pipeline, step, limit)

    def cache_probe(
        self, key: str, pipeline: str, step: str, limit: int = 50, fast: bool = False
    ) -> tuple[Row | None, list[Row] | None]:
        """`(entry, None)` when `key` has a cache entry, else `(None, the step's history)`:
        on the hot path one read either way."""
        if fast:
            return self.fast().probe(key, pipeline, step, limit)  # type: ignore[no-any-return]
        entry = self.cache.get(key)
        return (entry, None) if entry else (None, self.cache.history(pipeline, step, limit))

    def cache_get_many(self, keys: list[str], fast: bool = False) -> dict[str, Row]:
        """The cache entries of those of `keys` that have one, by key: one read for many
        keys (a mapped step's children), as `cache_get` reads one."""
        if fast:
            return self.fast().cache_many(keys)  # type: ignore[no-any-return]
        with self.db.read() as conn:
            return self.cache.rows_many(conn, keys)

    def cache_histories(
        self, pipeline: str, steps: list[str], limit: int = 50, fast: bool = False
    ) -> dict[str, list[Row]]:
        """`cache_history` of each of `steps` at once, by step (a step without entries is
        absent)."""
        if fast:
            return self.fast().histories(pipeline, steps, limit)  # type: ignore[no-any-return]
        with self.db.read() as conn:
            return self.cache.histories_rows(conn, pipeline, steps, limit)

    def cache_prefetch(
        self, pipeline: str, steps: list[str], eager: bool = False
    ) -> dict[str, Row]:
        """Cache entries likely to be hit by a run of `steps`, by key, read at once (on the
        hot paths each step's newest entry; the portable path reads none). `eager` asks
        for them where a store would otherwise read none (checking a hit's artifacts costs
        round trips: object storage). Entries never change, so a prefetched one is as
        good as one read later."""
        return self.fast().prefetch(pipeline, steps, eager)  # type: ignore[no-any-return]

    def history_rows(self, conn: Connection, pipeline: str, step: str, limit: int) -> list[Row]:
        return self.cache.history_rows(conn, pipeline, step, limit)

    def drop_cache_entries(self, keys: Iterable[str]) -> None:
        self.cache.drop(keys)

    def artifact_rows(self, hashes: Iterable[str]) -> dict[str, Row]:
        return self.artifact_index.rows(hashes)

    def artifact_ref(self, hash_: str) -> ArtifactRef | None:
        return self.artifact_index.ref(hash_)

    def referenced_artifacts(self, keep_runs: int | None = None) -> set[str]:
        return self.artifact_index.referenced(keep_runs)

    def inline_artifacts(self) -> dict[str, float]:
        return self.artifact_index.inline_ages()

    def prune_cache(self, keep: set[str]) -> int:
        return self.artifact_index.prune(keep)

    # -- claims and launches --------------------------------------------------------------
    def claim(self, kind: str, key: str, owner: str) -> bool:
        """Take one item of shared work (a tick, an event); True for exactly one caller."""
        return self.claims.claim(kind, key, owner)

    def claim_launch(
        self, claims: list[tuple[str, str]], owner: str, *, run_id: str, source: str,
        args: list[str], status: str = "pending", event: dict[str, Any] | None = None,
    ) -> bool:  # fmt: skip
        """Claim items of work (kind, key) and record the run they start, in one
        transaction (with `event`, also the event's `started` record); False if any item
        was taken already."""
        return self.claims.claim_launch(
            claims, owner, run_id=run_id, source=source, args=args, status=status, event=event
        )

    def claim_owner(self, kind: str, key: str) -> str | None:
        return self.claims.owner(kind, key)

    def last_launch(self, source: str) -> dt.datetime | None:
        return self.claims.last_launch(source)

    def launch_busy(self, source: str) -> bool:
        return self.claims.launch_busy(source)

    def launches(self, statuses: Iterable[str], limit: int = 1000) -> list[Row]:
        return self.claims.launches(statuses, limit)

    def set_launch(
        self, run_id: str, status: str, *, error: str | None = None,
        owner: str | None = None, expect: dict[str, str] | None = None,
    ) -> bool:  # fmt: skip
        return self.claims.set_launch(run_id, status, error=error, owner=owner, expect=expect)

    # -- schedules, events, monitor checks ------------------------------------------------
    def schedule_state(self, name: str) -> dict[str, Any]:
        return self.schedules.state(name)

    def set_schedule_state(self, name: str, **values: Any) -> None:
        self.schedules.set_state(name, **values)

    def schedule_running(self, name: str) -> bool:
        """Whether a run started by this schedule is still going (a dead one is not)."""
        return self.schedules.running(name)

    def emit_event(
        self, name: str, data: dict[str, Any], source: str = "cli",
        idempotency_key: str | None = None,
    ) -> tuple[int, bool]:  # fmt: skip
        """Record an event durably; returns (id, new): a repeated idempotency key returns
        the first event's id and `new=False`."""
        return self.events.emit(name, data, source, idempotency_key)

    def pending_events(self, limit: int = 100) -> list[Row]:
        return self.events.pending(limit)

    def handle_event(
        self, event_id: int, status: str, reason: str, run_id: str | None = None
    ) -> None:
        self.events.handle(event_id, status, reason, run_id)

    def list_events(self, limit: int = 50) -> list[Row]:
        return self.events.list(limit)

    def record_check(self, **row: Any) -> int:
        return self.checks.record(**row)

    def monitor_checks(self, limit: int = 50, monitor: str | None = None) -> list[Row]:
        return self.checks.list(limit, monitor)

    def monitor_check(self, check_id: int) -> Row | None:
        return self.checks.get(check_id)

    def monitor_position(self, monitor: str, source: str) -> int:
        return self.checks.position(monitor, source)
