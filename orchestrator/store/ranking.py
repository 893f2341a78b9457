"""Runs ranked in SQL for the experiments table: sorted by a metric, narrowed by filters.

`RankingRepository.ranked(...)` answers run ids in the order the table shows them, one
page (`LIMIT`/`OFFSET`) at a time, over every run of the selection (not a recent window).
A metric's value per run is its last logged point (the row with the highest `id` among
the run's own rows and those of the steps it took from the cache, as
`TrackingRepository.summaries` counts them), read from `run_metric_summary` (kept by
triggers and the step-run writers, schema.py): a sort walks its `(name, value)` index
and stops at the page, a metric filter looks its value up by primary key.

Invariants: SQLAlchemy Core only, every value a bound parameter; runs without the sort
metric come last in either direction (a second query, after the runs that have it), ties
newest first; a filter's SQL predicate is exact for metrics with a numeric value and a
superset for parameters (a parameter's value may be text, JSON or logged by a step), so
callers check each page's runs with the exact rule and page on until they have enough.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
)

from orchestrator.store import schema as t
from orchestrator.store.base import Db

NUMERIC_OPS = ("=", "!=", ">", ">=", "<", "<=")
# a literal, so the partial index `ix_step_runs_cached` serves the lookups on both stores
_CACHED = literal_column("'cached'")


@dataclasses.dataclass(frozen=True)
class Condition:
    """One filter as SQL sees it: `kind` is "metric" or "param"; `number` when it is one."""

    name: str
    kind: str
    op: str
    value: str
    number: float | None


class RankingRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    def metric_exists(self, name: str, pipeline: str | None, status: str | None) -> bool:
        """Whether some run of the selection logged a metric called `name`."""
        m, r = t.run_metric_summary.c, t.runs.c
        q = select(m.run_id).where(m.name == name)
        if pipeline or status:
            q = q.join(t.runs, r.id == m.run_id).where(*_selection(pipeline, status))
        with self.db.read() as conn:
            return conn.execute(q.limit(1)).first() is not None

    def param_exists(self, name: str, pipeline: str | None, status: str | None) -> bool:
        """Whether some run of the selection has a pipeline parameter or logged one `name`."""
        p, r = t.run_params.c, t.runs.c
        logged = select(p.id).where(p.name == name)
        if pipeline or status:
            logged = logged.join(t.runs, r.id == p.run_id).where(*_selection(pipeline, status))
        if self.db.engine.dialect.name == "postgresql":
            has = func.json_typeof(r.params.op("->")(name)).is_not(None)
        else:
            has = func.json_type(r.params, _path(name)).is_not(None)
        piped = select(r.id).where(has, *_selection(pipeline, status))
        with self.db.read() as conn:
            if conn.execute(logged.limit(1)).first() is not None:
                return True
            return conn.execute(piped.limit(1)).first() is not None

    def runs(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """Run rows of `run_ids` in that order, each with `counts` of its step states."""
        if not run_ids:
            return []
        s = t.step_runs.c
        with self.db.read() as conn:
            found = conn.execute(select(t.runs).where(t.runs.c.id.in_(run_ids)))
            rows = {r.id: dict(r._mapping) | {"counts": {}} for r in found}
            counts = conn.execute(
                select(s.run_id, s.state, func.count())
                .where(s.run_id.in_(run_ids))
                .group_by(s.run_id, s.state)
            )
            for rid, state, n in counts:
                rows[rid]["counts"][state] = int(n)
        return [rows[rid] for rid in run_ids if rid in rows]

    def ranked(
        self,
        *,
        sort: str | None,
        descending: bool,
        conditions: list[Condition],
        pipeline: str | None,
        status: str | None,
        limit: int,
        offset: int,
    ) -> list[str]:
        """One page of run ids: the selection narrowed by `conditions`, sorted by the
        metric `sort` (else newest first)."""
        r = t.runs.c
        where = [*_selection(pipeline, status), *map(self._predicate, conditions)]
        newest = (r.started_at.desc(), r.id.desc())
        with self.db.read() as conn:
            if sort is None:
                q = select(r.id).where(*where).order_by(*newest)
                return [row[0] for row in conn.execute(q.limit(limit).offset(offset))]
            m = t.run_metric_summary.c
            value = m.value.desc() if descending else m.value.asc()
            having = (
                select(r.id)
                .join(t.run_metric_summary, and_(m.run_id == r.id, m.name == sort))
                .where(*where)
            )
            q = having.order_by(value, *newest).limit(limit).offset(offset)
            page = [row[0] for row in conn.execute(q)]
            if len(page) == limit:
                return page
            # the page ends past the runs with the metric: the runs without it, newest first
            skip = offset - self._count(conn, having) if offset and not page else 0
            lacking = select(r.id).where(*where, ~exists().where(m.run_id == r.id, m.name == sort))
            rest = lacking.order_by(*newest).limit(limit - len(page)).offset(skip)
            return page + [row[0] for row in conn.execute(rest)]

    @staticmethod
    def _count(conn: Connection, q: Select[Any]) -> int:
        return int(conn.execute(select(func.count()).select_from(q.subquery())).scalar_one())

    def _predicate(self, c: Condition) -> ColumnElement[bool]:
        if c.kind == "metric":
            return _metric_predicate(_last_value(c.name), c)
        return self._param_predicate(c)

    def _param_predicate(self, c: Condition) -> ColumnElement[bool]:
        """A superset of the runs whose parameter `c.name` passes `c`: the pipeline
        parameter's JSON value compared in SQL, or any run that logged a parameter of
        that name (itself or in a step it took from the cache), checked by the caller."""
        if c.op == "!=":
            return true()
        p = t.run_params.c
        logged = exists().where(and_(p.run_id == t.runs.c.id, p.name == c.name))
        return or_(self._pipeline_param(c), logged, _borrowed_param(c.name))

    def _pipeline_param(self, c: Condition) -> ColumnElement[bool]:
        params = t.runs.c.params
        if self.db.engine.dialect.name == "postgresql":
            kind: Any = func.json_typeof(params.op("->")(c.name))
            numbers, texts = ("number",), ("string",)
        else:
            kind = func.json_type(params, _path(c.name))
            numbers, texts = ("integer", "real"), ("text",)
        if c.number is None:  # text: strings and JSON values are compared by the caller
            return and_(kind.is_not(None), kind.not_in(numbers))
        number = case((kind.in_(numbers), params[c.name].as_float()), else_=None)
        return or_(_compare(number, c.op, c.number), kind.in_(texts))


def _selection(pipeline: str | None, status: str | None) -> list[ColumnElement[bool]]:
    r = t.runs.c
    return [
        *([r.pipeline == pipeline] if pipeline else []),
        *([r.status == status] if status else []),
    ]


def _last_value(name: str) -> Any:
    """Per run (correlated to `runs`): its value of metric `name`, or NULL."""
    m = t.run_metric_summary.alias(f"v_{name}")
    return (
        select(m.c.value)
        .where(m.c.run_id == t.runs.c.id, m.c.name == name)
        .correlate(t.runs)
        .scalar_subquery()
    )


def _borrowed_param(name: str) -> ColumnElement[bool]:
    s, p = t.step_runs.c, t.run_params.c
    from_run = t.step_runs.c.reason["from_run"].as_string()
    return exists().where(
        and_(
            s.run_id == t.runs.c.id,
            s.state == _CACHED,
            p.run_id == from_run,
            p.step == s.name,
            p.name == name,
        )
    )


def _metric_predicate(value: Any, c: Condition) -> ColumnElement[bool]:
    """Exact for a number; a metric never equals text, and a missing one passes `!=`."""
    if c.number is None:
        return true() if c.op == "!=" else false()
    if c.op == "!=":
        return or_(value.is_(None), value != c.number)
    return _compare(value, c.op, c.number)


def _compare(value: Any, op: str, number: float) -> ColumnElement[bool]:
    return {
        "=": lambda: value == number,
        "!=": lambda: value != number,
        ">": lambda: value > number,
        ">=": lambda: value >= number,
        "<": lambda: value < number,
        "<=": lambda: value <= number,
    }[op]()


def _path(name: str) -> str:
    return '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
