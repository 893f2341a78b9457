"""Reads for browsing the store (the web UI's pages): runs pages, pipelines, schedules.

The UI reaches the store only through these functions and the `MetadataStore` facade;
it never builds SQL or imports the schema. Each takes the `MetadataStore`.

Invariants: SQLAlchemy Core only, every value a bound parameter; every list is bounded
(LIMIT); a runs page costs three statements whatever its size (the page, the total, and
one grouped count of step states over the page's run ids), each on an indexed column
(`runs.started_at`, `runs.pipeline`, `runs.status`, the `(run_id, name)` key of
`step_runs`, the `(kind, key)` key of `claims`). Results are plain dicts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, func, select

from orchestrator.errors import NotFound
from orchestrator.store import schema as t

_LIST_COLS = (
    t.runs.c.id,
    t.runs.c.pipeline,
    t.runs.c.target,
    t.runs.c.status,
    t.runs.c.params,
    t.runs.c.executor,
    t.runs.c.started_at,
    t.runs.c.ended_at,
    t.runs.c.host,
    t.runs.c.pid,
    t.runs.c.resumed_from,
    t.runs.c.trigger,
)


@dataclasses.dataclass(frozen=True)
class RunPage:
    runs: list[dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def runs_page(
    store: Any, pipeline: str | None, status: str | None, page: int, per_page: int
) -> RunPage:
    """One page of runs, newest first, each with `counts` of its step states."""
    conds = []
    if pipeline:
        conds.append(t.runs.c.pipeline == pipeline)
    if status:
        conds.append(t.runs.c.status == status)
    q = (
        select(*_LIST_COLS)
        .where(*conds)
        .order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    with store.db.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
        total = conn.execute(select(func.count()).select_from(t.runs).where(*conds)).scalar_one()
        counts = _state_counts(conn, [r["id"] for r in rows])
    for r in rows:
        r["counts"] = counts.get(r["id"], {})
    refresh_stale(store, rows)
    return RunPage(rows, int(total), page, per_page)


def _state_counts(conn: Any, run_ids: list[str]) -> dict[str, dict[str, int]]:
    if not run_ids:
        return {}
    c = t.step_runs.c
    out: dict[str, dict[str, int]] = defaultdict(dict)
    q = (
        select(c.run_id, c.state, func.count())
        .where(c.run_id.in_(run_ids))
        .group_by(c.run_id, c.state)
    )
    for run_id, state, n in conn.execute(q):
        out[run_id][state] = int(n)
    return out


def refresh_stale(store: Any, rows: list[dict[str, Any]]) -> None:
    """A run shown as running whose process on this host is gone was interrupted: the
    store records it (as `orch runs` does) and the rows show the recorded status."""
    store.runs.refresh_stale(rows)


def get_run(store: Any, run_id: str) -> dict[str, Any]:
    """A run by id (exact, else an unambiguous prefix as the CLI takes); NotFound otherwise."""
    with store.db.read() as conn:
        row = conn.execute(select(t.runs).where(t.runs.c.id == run_id)).first()
    if row is None:
        return dict(store.get_run(run_id))  # prefix lookup; raises NotFound
    run = dict(row._mapping)
    refresh_stale(store, [run])
    return run


def step_row(store: Any, run_id: str, step: str) -> dict[str, Any]:
    with store.db.read() as conn:
        row = conn.execute(
            select(t.step_runs).where(
                and_(t.step_runs.c.run_id == run_id, t.step_runs.c.name == step)
            )
        ).first()
    if row is None:
        raise NotFound(f"run {run_id} has no step '{step}'")
    return dict(row._mapping)


def step_log(store: Any, run_id: str, step: str) -> dict[str, Any] | None:
    c = t.step_runs.c
    with store.db.read() as conn:
        row = conn.execute(
            select(c.state, c.log).where(and_(c.run_id == run_id, c.name == step))
        ).first()
    return None if row is None else {"state": row.state, "log": row.log or ""}


# -- pipelines ------------------------------------------------------------------------
def pipelines(store: Any) -> list[dict[str, Any]]:
    """Every recorded pipeline: name, ref, runs count and its latest run."""
    r = t.runs.c
    with store.db.read() as conn:
        pipes = [dict(p._mapping) for p in conn.execute(select(t.pipelines))]
        stats = {
            name: (int(n), last)
            for name, n, last in conn.execute(
                select(r.pipeline, func.count(), func.max(r.started_at)).group_by(r.pipeline)
            )
        }
        for p in pipes:
            p["runs"], last = stats.get(p["name"], (0, None))
            p["last_run"] = _latest(conn, p["name"], last)
    return sorted(pipes, key=lambda p: p["name"])


def _latest(conn: Any, pipeline: str, started: Any) -> dict[str, Any] | None:
    if started is None:
        return None
    r = t.runs.c
    row = conn.execute(
        select(r.id, r.status, r.started_at, r.ended_at)
        .where(and_(r.pipeline == pipeline, r.started_at >= started))
        .order_by(r.started_at.desc())
        .limit(1)
    ).first()
    return None if row is None else dict(row._mapping)


def pipeline_row(store: Any, name: str) -> dict[str, Any] | None:
    with store.db.read() as conn:
        row = conn.execute(select(t.pipelines).where(t.pipelines.c.name == name)).first()
    return None if row is None else dict(row._mapping)


def pipeline_names(store: Any) -> list[str]:
    with store.db.read() as conn:
        return sorted(n for (n,) in conn.execute(select(t.pipelines.c.name)))


# -- schedules, triggers, sensors -----------------------------------------------------
def schedule_states(store: Any) -> dict[str, dict[str, Any]]:
    return dict(store.schedules.states())


def tick_claims(store: Any, schedule: str, limit: int = 10) -> list[dict[str, Any]]:
    """The newest ticks claimed for a schedule (claim keys are `name@<UTC ISO time>`)."""
    c = t.claims.c
    low, high = f"{schedule}@", f"{schedule}A"  # '@' + 1 == 'A': a range on the key
    with store.db.read() as conn:
        rows = conn.execute(
            select(c.key, c.owner, c.claimed_at)
            .where(and_(c.kind == "tick", c.key >= low, c.key < high))
            .order_by(c.claimed_at.desc())
            .limit(limit)
        )
        return [
            dict(r._mapping) | {"scheduled_time": r.key[len(low) :]}
            for r in rows
            if r.key.rpartition("@")[0] == schedule  # not `name@x@...` of another schedule
        ]


def launch_states(store: Any, source: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    """{claim key: {status, run_id, error}} of the daemon's launches for these keys."""
    if not keys:
        return {}
    c = t.launches.c
    with store.db.read() as conn:
        rows = conn.execute(
            select(c.key, c.status, c.run_id, c.error).where(
                and_(c.source == source, c.key.in_(keys))
            )
        )
        return {r.key: dict(r._mapping) for r in rows}


def runs_by_trigger(store: Any, field: str, name: str, limit: int = 10) -> list[dict[str, Any]]:
    """The newest runs whose trigger names `name` under `field` (schedule, trigger, sensor)."""
    r = t.runs.c
    with store.db.read() as conn:
        rows = conn.execute(
            select(r.id, r.status, r.started_at, r.ended_at, r.trigger)
            .where(r.trigger[field].as_string() == name)
            .order_by(r.started_at.desc())
            .limit(limit)
        )
        return [dict(row._mapping) for row in rows]


def recorded_triggers(store: Any, scan: int = 2000) -> dict[str, set[str]]:
    """Names of event triggers and file sensors the store saw (claims and recent runs)."""
    found: dict[str, set[str]] = {"trigger": set(), "sensor": set(), "schedule": set()}
    c, r = t.claims.c, t.runs.c
    with store.db.read() as conn:
        claims = conn.execute(
            select(c.kind, c.key)
            .where(c.kind.in_(("event", "file", "tick")))
            .order_by(c.claimed_at.desc())
            .limit(scan)
        )
        for kind, key in claims:
            if kind == "event":  # `<event id>:<trigger>`
                found["trigger"].add(key.partition(":")[2])
            elif kind == "file":  # `<sensor>:<path>:<hash>`
                found["sensor"].add(key.partition(":")[0])
            else:  # `<schedule>@<time>`
                found["schedule"].add(key.rpartition("@")[0])
        kinds = r.trigger["kind"].as_string()
        trig_rows = conn.execute(
            select(r.trigger)
            .where(kinds.in_(("event", "sensor", "schedule")))
            .order_by(r.started_at.desc())
            .limit(scan)
        )
        for (trig,) in trig_rows:
            key = {"event": "trigger", "sensor": "sensor", "schedule": "schedule"}[trig["kind"]]
            name = trig.get({"trigger": "trigger", "sensor": "sensor"}.get(key, "schedule"))
            if name:
                found[key].add(str(name))
    return {k: {n for n in v if n} for k, v in found.items()}


def recent_runs(store: Any, pipeline: str, limit: int = 20) -> list[dict[str, Any]]:
    return runs_page(store, pipeline, None, 1, limit).runs


def run_for_request(store: Any, request: str, since: dt.datetime) -> str | None:
    """The id of the run started since about `since` whose trigger carries `request`."""
    r = t.runs.c
    with store.db.read() as conn:
        rows = conn.execute(
            select(r.id, r.trigger)
            .where(r.started_at >= since - dt.timedelta(seconds=5))
            .order_by(r.started_at.desc())
            .limit(50)
        )
        for run_id, trigger in rows:
            if (trigger or {}).get("request") == request:
                return str(run_id)
    return None
