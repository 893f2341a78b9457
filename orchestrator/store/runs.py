"""Runs and their step runs: the records a run leaves, and the liveness of a running one.

A run is created `running` together with its pipeline's row (name -> how to load it),
with this host and process id. `finish` sets its final status; any other status than
`succeeded` also marks its still-running step runs and attempts `interrupted`, in the
same transaction. A cancel request (`request_cancel`) only stamps the running run: the
engine that runs it polls `cancel_requested` and ends the run `cancelled`. A run read as
`running` whose process on this host is gone (or is another process with a recycled pid)
was interrupted: the reads record that (`refresh_stale`) and return the recorded status;
a read-only store reports it without recording it. Step runs are written by batches
(store/batch.py); here they are only read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import psutil
from sqlalchemy import and_, func, insert, select, update

from orchestrator.errors import NotFound
from orchestrator.state import RunStatus, StepState
from orchestrator.store import schema as t
from orchestrator.store.base import Db, Row, now, run_rows

DIED = "the runner process died"


class RunRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    def create(
        self, run_id: str, pipeline: str, target: str, params: dict[str, Any], executor: str,
        resumed_from: str | None, trigger: dict[str, Any] | None,
    ) -> None:  # fmt: skip
        self.insert(
            *self.new_rows(run_id, pipeline, target, params, executor, resumed_from, trigger)
        )

    def new_rows(
        self, run_id: str, pipeline: str, target: str, params: dict[str, Any], executor: str,
        resumed_from: str | None, trigger: dict[str, Any] | None,
    ) -> tuple[Row, Row]:  # fmt: skip
        """The pipeline's row and the new running run's row."""
        args = (run_id, pipeline, target, params, executor, resumed_from, trigger)
        return run_rows(self.db.host, *args)

    def insert(self, pipeline: Row, run: Row) -> None:
        """Record (or update) the pipeline's row and insert the run's, in one transaction."""
        with self.db.tx() as conn:
            done = conn.execute(
                update(t.pipelines)
                .where(t.pipelines.c.name == pipeline["name"])
                .values(ref=pipeline["ref"], updated_at=pipeline["updated_at"])
            ).rowcount
            if not done:
                self.db.insert_ignored(conn, t.pipelines, [pipeline])
            conn.execute(insert(t.runs).values(**run))

    def finish(self, run_id: str, status: str, error: str | None = None) -> None:
        with self.db.tx() as conn:
            conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(status=status, ended_at=now(), error=error)
            )
            if status != RunStatus.SUCCEEDED:
                c = t.step_runs.c
                conn.execute(
                    update(t.step_runs)
                    .where(and_(c.run_id == run_id, c.state == StepState.RUNNING))
                    .values(state=StepState.INTERRUPTED, ended_at=now())
                )
                a = t.attempts.c
                conn.execute(
                    update(t.attempts)
                    .where(and_(a.run_id == run_id, a.state == StepState.RUNNING))
                    .values(state=StepState.INTERRUPTED, ended_at=now())
                )

    def keep_logs(self, run_id: str, logs: dict[str, str]) -> None:
        """Record the logs of step runs that ended `interrupted` without one (what their
        live files held when the run ended): the step run gets it whole, its interrupted
        attempt the part after the earlier attempts' logs."""
        c, a = t.step_runs.c, t.attempts.c
        with self.db.tx() as conn:
            for step, text in logs.items():
                conn.execute(
                    update(t.step_runs)
                    .where(and_(c.run_id == run_id, c.name == step, c.log.is_(None)))
                    .where(c.state == StepState.INTERRUPTED)
                    .values(log=text)
                )
                earlier = conn.execute(
                    select(a.log).where(and_(a.run_id == run_id, a.step == step))
                    .where(a.state != StepState.INTERRUPTED)
                ).scalars()  # fmt: skip
                skip = sum(len((e or "").encode()) for e in earlier)
                conn.execute(
                    update(t.attempts)
                    .where(and_(a.run_id == run_id, a.step == step, a.log.is_(None)))
                    .where(a.state == StepState.INTERRUPTED)
                    .values(log=text.encode()[skip:].decode("utf-8", "replace"))
                )

    def request_cancel(self, run_id: str) -> bool:
        """Ask the running run `run_id` to stop; False if it is not running (any more)."""
        r = t.runs.c
        with self.db.tx() as conn:
            row = conn.execute(
                select(r.status, r.cancel_requested_at).where(r.id == run_id)
            ).first()
            if row is None or row.status != RunStatus.RUNNING:
                return False
            if row.cancel_requested_at is None:
                conn.execute(update(t.runs).where(r.id == run_id).values(cancel_requested_at=now()))
        return True

    def cancel_requested(self, run_id: str) -> bool:
        with self.db.read() as conn:
            stamp = conn.execute(
                select(t.runs.c.cancel_requested_at).where(t.runs.c.id == run_id)
            ).scalar()
        return stamp is not None

    def refresh_stale(self, rows: list[Row]) -> None:
        """Runs in `rows` marked running whose process on this host is gone: record them
        interrupted (a read-only store: report them so) and update the rows in place."""
        for r in rows:
            if (
                r["status"] == RunStatus.RUNNING
                and r.get("host") == self.db.host
                and r.get("pid")
                and not alive(int(r["pid"]), r["started_at"])
            ):
                if not self.db.readonly:
                    self.finish(r["id"], RunStatus.INTERRUPTED, DIED)
                r["status"], r["ended_at"] = RunStatus.INTERRUPTED, r.get("ended_at") or now()
                if "error" in r:
                    r["error"] = r["error"] or DIED

    def list(
        self, limit: int = 20, pipeline: str | None = None, status: str | None = None
    ) -> list[Row]:
        q = select(t.runs).order_by(t.runs.c.started_at.desc()).limit(limit)
        if pipeline:
            q = q.where(t.runs.c.pipeline == pipeline)
        if status:
            q = q.where(t.runs.c.status == status)
        with self.db.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
            counts = conn.execute(
                select(t.step_runs.c.run_id, t.step_runs.c.state, func.count())
                .where(t.step_runs.c.run_id.in_([r["id"] for r in rows]))
                .group_by(t.step_runs.c.run_id, t.step_runs.c.state)
            ).all()
        self.refresh_stale(rows)
        by_run: dict[str, dict[str, int]] = {r["id"]: {} for r in rows}
        for rid, state, n in counts:
            by_run[rid][state] = n
        for r in rows:
            r["counts"] = by_run[r["id"]]
        return rows

    def get(self, run_id: str) -> Row:
        """A run by its id or an unambiguous prefix of it; NotFound otherwise (a whole id
        is one primary-key probe; only a prefix scans)."""
        with self.db.read() as conn:
            rows = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).all()
            if not rows:
                prefixed = t.runs.c.id.startswith(run_id, autoescape=True)
                rows = conn.execute(select(t.runs).where(prefixed).limit(2)).all()
        if not rows:
            raise NotFound(f"no run '{run_id}' (see `orch runs`)")
        if len(rows) > 1:
            raise NotFound(f"run id prefix '{run_id}' is ambiguous; give more characters")
        run = dict(rows[0]._mapping)
        self.refresh_stale([run])
        return run

    def steps(self, run_id: str) -> list[Row]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.step_runs).where(t.step_runs.c.run_id == run_id).order_by(t.step_runs.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def attempts(self, run_id: str, step: str | None = None) -> list[Row]:
        """The attempts of a run's step runs (of one step), in the order they started."""
        a = t.attempts.c
        q = select(t.attempts).where(a.run_id == run_id).order_by(a.id)
        if step is not None:
            q = q.where(a.step == step)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def existing(self, run_ids: Iterable[str]) -> dict[str, str]:
        """{run id: status} of those of `run_ids` that exist."""
        ids = list(run_ids)
        if not ids:
            return {}
        with self.db.read() as conn:
            rows = conn.execute(select(t.runs.c.id, t.runs.c.status).where(t.runs.c.id.in_(ids)))
            return {r.id: r.status for r in rows}

    def running_by_trigger(self, field: str, name: str) -> list[Row]:
        """Runs still going (after `refresh_stale`) whose trigger names `name` under `field`."""
        r = t.runs.c
        q = select(t.runs).where(
            and_(r.status == RunStatus.RUNNING, r.trigger[field].as_string() == name)
        )
        with self.db.read() as conn:
            rows = [dict(row._mapping) for row in conn.execute(q)]
        self.refresh_stale(rows)
        return [row for row in rows if row["status"] == RunStatus.RUNNING]


def alive(pid: int, started_at: dt.datetime) -> bool:
    """Whether `pid` is a live process that started no later than the run did."""
    try:
        return bool(psutil.Process(pid).create_time() <= started_at.timestamp() + 1)
    except psutil.Error:
        return False
