"""The artifact records (content hash -> serializer, type, size) and their collection.

A record is written with the batch of the step that produced it and is keyed by its
content hash, so it is never written twice. `referenced` is what garbage collection
keeps: hashes named by kept runs' step runs, model versions (and their drift
references) and monitor reports; `inline_ages` lists the inline artifacts (small values
whose bytes live in their rows, not in files) with the time each was recorded. `prune`
drops, in one transaction, every cache entry that names an artifact not kept, then those
artifacts' records: a cache entry never outlives an artifact it names. Hash lists go
to the database in chunks of 500.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, select

from orchestrator.artifacts.store import ArtifactRef, file_hashes
from orchestrator.store import schema as t
from orchestrator.store.base import Db, Row

CHUNK = 500


class ArtifactIndex:
    def __init__(self, db: Db) -> None:
        self.db = db

    def rows(self, hashes: Iterable[str]) -> dict[str, Row]:
        hashes = list(set(hashes))
        out: dict[str, Row] = {}
        with self.db.read() as conn:
            for i in range(0, len(hashes), CHUNK):
                rows = conn.execute(
                    select(t.artifacts).where(t.artifacts.c.hash.in_(hashes[i : i + CHUNK]))
                )
                out.update({r.hash: dict(r._mapping) for r in rows})
        return out

    def ref(self, hash_: str) -> ArtifactRef | None:
        """The stored artifact with this content hash (how to read it), if recorded."""
        row = self.rows([hash_]).get(hash_)
        if row is None:
            return None
        data = row.get("inline")
        return ArtifactRef(
            row["hash"],
            row["serializer"],
            row["type"],
            row["size"],
            data=None if data is None else data.encode(),
        )

    def inline_ages(self) -> dict[str, float]:
        """Every inline artifact's hash -> when it was recorded (a POSIX time)."""
        a = t.artifacts.c
        with self.db.read() as conn:
            rows = conn.execute(select(a.hash, a.created_at).where(a.inline.is_not(None)))
            return {h: at.timestamp() for h, at in rows}

    def referenced(self, keep_runs: int | None = None) -> set[str]:
        """Hashes referenced by kept runs' step runs and logged artifacts, model versions and
        monitor reports."""
        with self.db.read() as conn:
            refs = self._run_outputs(conn, keep_runs)
            versions = select(t.model_versions.c.artifact_hash, t.model_versions.c.data_hash)
            for model_hash, data_hash in conn.execute(versions):
                refs.add(model_hash)
                if data_hash:  # a drift monitor's reference
                    refs.add(data_hash)
            reports = select(t.monitor_checks.c.report_hash)
            refs.update(h for (h,) in conn.execute(reports) if h)
        return refs

    def _run_outputs(self, conn: Connection, keep_runs: int | None) -> set[str]:
        refs: set[str] = set()
        run_q = select(t.runs.c.id).order_by(t.runs.c.started_at.desc())
        if keep_runs is not None:
            run_q = run_q.limit(keep_runs)
        kept = [r.id for r in conn.execute(run_q)]
        outputs = t.step_runs.c.outputs
        for i in range(0, len(kept), CHUNK):
            chunk = kept[i : i + CHUNK]
            for (outs,) in conn.execute(select(outputs).where(t.step_runs.c.run_id.in_(chunk))):
                refs.update(h for o in outs or [] for h in file_hashes(o))
            logged = select(t.run_artifacts.c.hash).where(t.run_artifacts.c.run_id.in_(chunk))
            refs.update(h for (h,) in conn.execute(logged))
        return refs

    def prune(self, keep: set[str]) -> int:
        """Drop cache entries whose outputs are not all kept, and the records of artifacts
        not kept; return how many cache entries went."""
        c = t.cache_entries.c
        with self.db.tx() as conn:
            drop = [
                r.cache_key
                for r in conn.execute(select(c.cache_key, c.outputs))
                if not all(h in keep for o in r.outputs for h in file_hashes(o))
            ]
            for i in range(0, len(drop), CHUNK):
                conn.execute(delete(t.cache_entries).where(c.cache_key.in_(drop[i : i + CHUNK])))
            doomed = [h for (h,) in conn.execute(select(t.artifacts.c.hash)) if h not in keep]
            for i in range(0, len(doomed), CHUNK):
                chunk = doomed[i : i + CHUNK]
                conn.execute(delete(t.artifacts).where(t.artifacts.c.hash.in_(chunk)))
        return len(drop)
