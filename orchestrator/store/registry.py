"""The model registry over the metadata store: versions, stages, metrics and lineage.

Stages: `candidate` (registered), `production` (at most one per name), `archived` (a
former production version). Promotion archives the previous production version in the
same transaction, so there is never a moment with two champions.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import and_, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.cache.hashing import canonical, hash_text
from orchestrator.errors import NotFound
from orchestrator.execution.context import ModelVersion
from orchestrator.store import schema as t
from orchestrator.store.metadata import MetadataStore, now


def _version(row: Any) -> ModelVersion:
    m = row._mapping
    return ModelVersion(
        name=m["name"],
        version=m["version"],
        stage=m["stage"],
        artifact_hash=m["artifact_hash"],
        metrics=dict(m["metrics"]),
        run_id=m["run_id"],
        step=m["step"],
        params=dict(m["params"]),
        data_hash=m["data_hash"],
        reason=m["reason"],
        created_at=m["created_at"],
    )


class StoreRegistry:
    def __init__(self, store: MetadataStore, artifacts: ArtifactStore) -> None:
        self.store, self.artifacts = store, artifacts

    def production(self, name: str) -> ModelVersion | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(t.model_versions).where(
                    and_(t.model_versions.c.name == name, t.model_versions.c.stage == "production")
                )
            ).first()
        return _version(row) if row else None

    def get(self, name: str, version: int) -> ModelVersion:
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(t.model_versions).where(
                    and_(t.model_versions.c.name == name, t.model_versions.c.version == version)
                )
            ).first()
        if row is None:
            raise NotFound(f"no version {version} of model '{name}' (see `orch models`)")
        return _version(row)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        q = select(t.model_versions).order_by(t.model_versions.c.name, t.model_versions.c.version)
        if name:
            q = q.where(t.model_versions.c.name == name)
        with self.store.engine.connect() as conn:
            return [_version(r) for r in conn.execute(q)]

    def register(
        self,
        name: str,
        *,
        artifact_hash: str,
        metrics: dict[str, float],
        run_id: str | None,
        step: str | None,
        params: dict[str, Any],
        data_hash: str | None,
        reason: str = "",
    ) -> ModelVersion:
        stored: dict[str, float | None] = {  # JSON has no NaN: an undefined metric is null
            k: (v if isinstance(v, int | float) and math.isfinite(v) else None)
            for k, v in metrics.items()
        }
        params = canonical(params)
        for _ in range(20):  # two registrations racing for the same version number retry
            try:
                with self.store.tx() as conn:
                    if conn.dialect.name == "postgresql":  # serialise registrations per name
                        key = int(hash_text(name), 16) & 0x7FFFFFFFFFFFFFFF
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
                    last = (
                        conn.execute(
                            select(func.max(t.model_versions.c.version)).where(
                                t.model_versions.c.name == name
                            )
                        ).scalar()
                        or 0
                    )
                    stamp = now()
                    conn.execute(
                        insert(t.model_versions).values(
                            name=name,
                            version=last + 1,
                            stage="candidate",
                            artifact_hash=artifact_hash,
                            metrics=stored,
                            run_id=run_id,
                            step=step,
                            params=params,
                            data_hash=data_hash,
                            reason=reason,
                            created_at=stamp,
                            updated_at=stamp,
                        )
                    )
                return self.get(name, last + 1)
            except IntegrityError:
                continue
        raise NotFound(f"could not register a version of model '{name}'")

    def promote(self, name: str, version: int, reason: str) -> ModelVersion:
        self.get(name, version)
        with self.store.tx() as conn:
            conn.execute(
                update(t.model_versions)
                .where(
                    and_(
                        t.model_versions.c.name == name,
                        t.model_versions.c.stage == "production",
                        t.model_versions.c.version != version,
                    )
                )
                .values(stage="archived", updated_at=now())
            )
            conn.execute(
                update(t.model_versions)
                .where(and_(t.model_versions.c.name == name, t.model_versions.c.version == version))
                .values(stage="production", reason=reason, updated_at=now())
            )
        return self.get(name, version)

    def set_reason(self, name: str, version: int, reason: str) -> None:
        with self.store.tx() as conn:
            conn.execute(
                update(t.model_versions)
                .where(and_(t.model_versions.c.name == name, t.model_versions.c.version == version))
                .values(reason=reason, updated_at=now())
            )

    def load(self, version: ModelVersion) -> Any:
        ref = self.store.artifact_ref(version.artifact_hash)
        if ref is None:
            raise NotFound(
                f"model '{version.name}' v{version.version}: artifact "
                f"{version.artifact_hash[:12]} is not in the store"
            )
        return self.artifacts.get(ref)
