"""What runs tracked, read back: metrics, metric series, logged parameters and artifacts.

Rows are written by the engine's batches (the recorder, from each step's result); here
they are only read, for many runs at once (one query per table). Invariants: a run's
value of a metric is its last logged point (logging order); a step the run took from the
cache counts what the run that computed it tracked for that step, so a cache hit keeps
its metrics; names are per run (the same name logged by two steps: the later wins, and
the series keeps both, each point naming its step).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Table, and_, select

from orchestrator.state import StepState
from orchestrator.store import schema as t
from orchestrator.store.base import Db, Row

CHUNK = 500


def empty() -> dict[str, Any]:
    """The tracking summary of a run that tracked nothing."""
    return {"metrics": {}, "series": {}, "params": {}, "artifacts": []}


class TrackingRepository:
    def __init__(self, db: Db) -> None:
        self.db = db

    def summaries(
        self, run_ids: Iterable[str], metrics: Iterable[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """{run id: {"metrics", "series", "params", "artifacts"}} for each of `run_ids`
        (with `metrics`: only those metric names are read, and no artifacts)."""
        only = None if metrics is None else sorted(set(metrics))
        ids = list(dict.fromkeys(run_ids))
        out = {rid: empty() for rid in ids}
        if not ids:
            return out
        with self.db.read() as conn:
            borrowed = _cached_sources(conn, ids)
            sources = {src for pairs in borrowed.values() for src, _ in pairs}
            every = ids + sorted(sources - set(ids))
            points = _rows(conn, t.run_metrics, every, only)
            params = _rows(conn, t.run_params, every)
            artifacts = [] if only is not None else _rows(conn, t.run_artifacts, every)
            refs = _refs(conn, {a["hash"] for a in artifacts})
        tables = {"metrics": points, "params": params, "artifacts": artifacts}
        by_run = {k: _by_run(rows) for k, rows in tables.items()}
        for rid in ids:
            mine = {k: _mine(rid, borrowed.get(rid, []), g) for k, g in by_run.items()}
            _fill(out[rid], mine["metrics"], mine["params"], mine["artifacts"])
            out[rid]["artifacts"] = [a | refs.get(a["hash"], {}) for a in out[rid]["artifacts"]]
        return out

    def code(self, keys: Iterable[str]) -> dict[str, dict[str, str]]:
        """{cache key: code fingerprint components} (what `compare` diffs as code)."""
        return code_parts(self.db, keys)

    def metric_names(self, run_ids: Iterable[str]) -> list[str]:
        """The metric names `run_ids` logged, sorted."""
        ids = list(run_ids)
        names: set[str] = set()
        with self.db.read() as conn:
            for i in range(0, len(ids), CHUNK):
                q = select(t.run_metrics.c.name).where(
                    t.run_metrics.c.run_id.in_(ids[i : i + CHUNK])
                )
                names.update(n for (n,) in conn.execute(q.distinct()))
        return sorted(names)


def _rows(
    conn: Connection, table: Table, run_ids: list[str], names: list[str] | None = None
) -> list[Row]:
    rows: list[Row] = []
    for i in range(0, len(run_ids), CHUNK):
        q = select(table).where(table.c.run_id.in_(run_ids[i : i + CHUNK])).order_by(table.c.id)
        if names is not None:
            q = q.where(table.c.name.in_(names))
        rows.extend(dict(r._mapping) for r in conn.execute(q))
    rows.sort(key=lambda r: r["id"])
    return rows


def _refs(conn: Connection, hashes: set[str]) -> dict[str, Row]:
    """{hash: serializer, type, size} of recorded artifacts (what loading one needs)."""
    a, wanted, out = t.artifacts.c, sorted(hashes), {}
    for i in range(0, len(wanted), CHUNK):
        q = select(a.hash, a.serializer, a.type, a.size).where(a.hash.in_(wanted[i : i + CHUNK]))
        out.update({h: {"serializer": s, "type": ty, "size": n} for h, s, ty, n in conn.execute(q)})
    return out


def _cached_sources(conn: Connection, run_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """{run id: [(run that computed it, step)]} for the steps each run took from the cache."""
    c = t.step_runs.c
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for i in range(0, len(run_ids), CHUNK):
        q = select(c.run_id, c.name, c.reason).where(
            and_(c.run_id.in_(run_ids[i : i + CHUNK]), c.state == StepState.CACHED)
        )
        for rid, name, reason in conn.execute(q):
            src = (reason or {}).get("from_run")
            if src and src != rid:
                out[rid].append((src, name))
    return out


def _by_run(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        out[r["run_id"]].append(r)
    return out


def _mine(run_id: str, borrowed: list[tuple[str, str]], by_run: dict[str, list[Row]]) -> list[Row]:
    """The run's own rows and those of the steps it took from the cache, in logging order."""
    rows = list(by_run.get(run_id, []))
    for src, step in borrowed:
        rows += [r for r in by_run.get(src, []) if r["step"] == step]
    return sorted(rows, key=lambda r: r["id"]) if borrowed else rows


def _fill(summary: dict[str, Any], metrics: list[Row], params: list[Row], arts: list[Row]) -> None:
    for m in metrics:
        summary["metrics"][m["name"]] = m["value"]
        if m["position"] is not None:
            point = {"step": m["step"], "position": m["position"], "value": m["value"]}
            summary["series"].setdefault(m["name"], []).append(point)
    for p in params:
        summary["params"][p["name"]] = p["data"]
    summary["artifacts"] = [{"name": a["name"], "step": a["step"], "hash": a["hash"]} for a in arts]


def code_parts(db: Db, keys: Iterable[str]) -> dict[str, dict[str, str]]:
    """{cache key: its code fingerprint components} for the keys the cache index has."""
    wanted = sorted({k for k in keys if k})
    out: dict[str, dict[str, str]] = {}
    with db.read() as conn:
        for i in range(0, len(wanted), CHUNK):
            c = t.cache_entries.c
            q = select(c.cache_key, c.code).where(c.cache_key.in_(wanted[i : i + CHUNK]))
            out.update({k: dict(code or {}) for k, code in conn.execute(q)})
    return out
