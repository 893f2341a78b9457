"""The model registry over the metadata store: versions, stages, aliases, metrics, lineage,
and the audit trail of every change.

Stages: `candidate` (registered), `production` (at most one per name), `archived` (a
former production version). Promotion archives the previous production version in the
same transaction, so there is never a moment with two champions.

Invariants:

* **Audit trail.** Every registration, stage change and alias move appends one row to
  `model_events` in the transaction that makes the change: who (`actor`: `cli`, `ui`,
  `deploy`, `api`; a deploy step's event names its run and step), when, from -> to, and
  why. Events are never updated or deleted. A version's `reason` is the one it was
  registered with; a promotion's reason lives in its event and never overwrites it.
* **Code snapshot.** A version registered by a run gets, in the same transaction, the
  project's source files as they are in that run's process and the run's package
  versions (store/snapshots.py), so `orch reproduce` rebuilds it whatever was edited since.
* **Aliases** (`champion`, `staging`, any name matching `ALIAS`) point at one version
  each; `resolve(name, selector)` reads `production` (or no selector), a version number
  (`3` or `v3`) or an alias, and names what exists when nothing matches.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.cache.hashing import canonical, hash_text
from orchestrator.errors import NotFound, OrchestratorError
from orchestrator.execution.context import ModelVersion
from orchestrator.store import schema as t
from orchestrator.store import snapshots
from orchestrator.store.metadata import MetadataStore, now

ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
ACTORS = ("cli", "ui", "deploy", "api")
_VERSION = re.compile(r"^v?([0-9]{1,9})$")


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


def check_alias(alias: str) -> str:
    """`alias` if it can name an alias; one error line otherwise."""
    if alias == "production" or _VERSION.match(alias) or not ALIAS.match(alias):
        raise OrchestratorError(
            f"alias '{alias}' is not a valid alias name: start with a letter, then letters, "
            "digits, '.', '_' or '-' (up to 64; not 'production' nor a version number)"
        )
    return alias


def _where(name: str, version: int) -> Any:
    return and_(t.model_versions.c.name == name, t.model_versions.c.version == version)


def change_text(event: dict[str, Any]) -> str:
    """An event's change in words: `candidate -> production`, `alias champion: v2 set`."""
    old, new = event["from_value"], event["to_value"]
    if event["kind"] == "registered":
        return "registered as candidate"
    if event["kind"] == "alias" and new is None:
        return f"alias {old} removed"
    if event["kind"] == "alias" and old is None:
        return f"alias {new} set"
    return f"{old} -> {new}"


class StoreRegistry:
    def __init__(self, store: MetadataStore, artifacts: ArtifactStore) -> None:
        self.store, self.artifacts = store, artifacts

    # -- reading ---------------------------------------------------------------------------
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
            row = conn.execute(select(t.model_versions).where(_where(name, version))).first()
        if row is None:
            raise NotFound(f"no version {version} of model '{name}' (see `orch models {name}`)")
        return _version(row)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        q = select(t.model_versions).order_by(t.model_versions.c.name, t.model_versions.c.version)
        if name:
            q = q.where(t.model_versions.c.name == name)
        with self.store.engine.connect() as conn:
            return [_version(r) for r in conn.execute(q)]

    def of_run(self, run_id: str) -> list[ModelVersion]:
        """The versions a run registered, by name and version."""
        q = select(t.model_versions).where(t.model_versions.c.run_id == run_id)
        with self.store.engine.connect() as conn:
            rows = conn.execute(q.order_by(t.model_versions.c.name, t.model_versions.c.version))
            return [_version(r) for r in rows]

    def aliases(self, name: str) -> dict[str, int]:
        """`{alias: version}` of a model, by alias."""
        q = select(t.model_aliases.c.alias, t.model_aliases.c.version).where(
            t.model_aliases.c.name == name
        )
        with self.store.engine.connect() as conn:
            return dict(sorted((a, v) for a, v in conn.execute(q)))

    def events(self, name: str, limit: int = 500) -> list[dict[str, Any]]:
        """A model's audit trail, newest first."""
        q = (
            select(t.model_events)
            .where(t.model_events.c.name == name)
            .order_by(t.model_events.c.id.desc())
            .limit(limit)
        )
        with self.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def resolve(self, name: str, selector: str | None = None) -> ModelVersion | None:
        """The version `selector` names: production (None or `production`; None if there
        is none), a version number (`3`, `v3`) or an alias. Unknown ones raise NotFound."""
        if selector in (None, "production"):
            return self.production(name)
        number = _VERSION.match(selector or "")
        if number:
            return self.get(name, int(number.group(1)))
        aliases = self.aliases(name)
        if selector not in aliases:
            known = ", ".join(aliases) or "none"
            raise NotFound(
                f"model '{name}' has no alias '{selector}' (its aliases: {known}; "
                f"set one with `orch alias {name} {selector} VERSION`)"
            )
        return self.get(name, aliases[str(selector)])

    # -- changing --------------------------------------------------------------------------
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
        actor: str | None = None,
    ) -> ModelVersion:
        """A new `candidate` version (the next number) and its `registered` event; `actor`
        defaults to `deploy` when a step registers it, else `api`."""
        stored: dict[str, float | None] = {  # JSON has no NaN: an undefined metric is null
            k: (v if isinstance(v, int | float) and math.isfinite(v) else None)
            for k, v in metrics.items()
        }
        row = {
            "stage": "candidate",
            "artifact_hash": artifact_hash,
            "metrics": stored,
            "run_id": run_id,
            "step": step,
            "params": canonical(params),
            "data_hash": data_hash,
            "reason": reason,
        }
        who = actor or ("deploy" if step else "api")
        for _ in range(20):  # two registrations racing for the same version number retry
            try:
                with self.store.tx() as conn:
                    number = self._next_number(conn, name)
                    stamp = now()
                    values = row | {"name": name, "version": number}
                    conn.execute(
                        insert(t.model_versions).values(
                            values | {"created_at": stamp, "updated_at": stamp}
                        )
                    )
                    event = {"kind": "registered", "to_value": "candidate", "actor": who}
                    self._event(conn, name, number, event | {"reason": reason}, run_id, step)
                    self._snapshot(conn, name, number, run_id)
                return self.get(name, number)
            except IntegrityError:
                continue
        raise NotFound(f"could not register a version of model '{name}'")

    def _snapshot(self, conn: Connection, name: str, version: int, run_id: str | None) -> None:
        """The code and environment of the run registering `name` v`version`, if any."""
        if run_id is None:
            return
        target = conn.execute(select(t.runs.c.target).where(t.runs.c.id == run_id)).scalar()
        if target is not None:
            snapshots.record(conn, name, version, run_id, str(target))

    def sources(self, version: ModelVersion) -> dict[str, str]:
        """`{path in the project: text}` snapshotted when `version` was registered."""
        with self.store.engine.connect() as conn:
            return snapshots.sources(conn, version.name, version.version)

    def environment(self, run_id: str) -> dict[str, Any] | None:
        """The Python, packages, working folder and project root recorded for a run."""
        with self.store.engine.connect() as conn:
            return snapshots.environment(conn, run_id)

    def step_code(self, cache_key: str) -> dict[str, str] | None:
        """The code fingerprint recorded with a cache key (None: no such entry)."""
        with self.store.engine.connect() as conn:
            return snapshots.step_code(conn, cache_key)

    def _next_number(self, conn: Connection, name: str) -> int:
        if conn.dialect.name == "postgresql":  # serialise registrations per name
            key = int(hash_text(name), 16) & 0x7FFFFFFFFFFFFFFF
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        last = conn.execute(
            select(func.max(t.model_versions.c.version)).where(t.model_versions.c.name == name)
        ).scalar()
        return int(last or 0) + 1

    def promote(
        self,
        name: str,
        version: int,
        reason: str,
        *,
        actor: str = "api",
        run_id: str | None = None,
        step: str | None = None,
    ) -> ModelVersion:
        """Make `version` production, archiving the previous one, and record both stage
        changes. Promoting the production version changes and records nothing."""
        target = self.get(name, version)
        if target.stage == "production":
            return target
        with self.store.tx() as conn:
            previous = conn.execute(
                select(t.model_versions.c.version).where(
                    and_(t.model_versions.c.name == name, t.model_versions.c.stage == "production")
                )
            ).scalar()
            who = (actor, run_id, step)
            if previous is not None:
                why = f"replaced by v{version}: {reason}"
                self._move(conn, name, previous, ("production", "archived"), why, who)
            self._move(conn, name, version, (target.stage, "production"), reason, who)
        return self.get(name, version)

    def _move(
        self,
        conn: Connection,
        name: str,
        version: int,
        stages: tuple[str, str],
        reason: str,
        who: tuple[str, str | None, str | None],
    ) -> None:
        """Move one version from stage to stage and record it (`who`: actor, run, step)."""
        old, new = stages
        conn.execute(
            update(t.model_versions)
            .where(and_(_where(name, version), t.model_versions.c.stage == old))
            .values(stage=new, updated_at=now())
        )
        event = {"kind": "stage", "from_value": old, "to_value": new}
        self._event(conn, name, version, event | {"reason": reason, "actor": who[0]}, *who[1:])

    def set_alias(
        self, name: str, alias: str, version: int | None, reason: str = "", actor: str = "api"
    ) -> int | None:
        """Point `alias` at `version` (None: remove it) and record the move; returns the
        version it pointed at before (None if it was new)."""
        check_alias(alias)
        if version is not None:
            self.get(name, version)
        key = and_(t.model_aliases.c.name == name, t.model_aliases.c.alias == alias)
        with self.store.tx() as conn:
            old = conn.execute(select(t.model_aliases.c.version).where(key)).scalar()
            if version is None and old is None:
                raise NotFound(f"model '{name}' has no alias '{alias}'")
            if old == version:
                return old
            conn.execute(delete(t.model_aliases).where(key))
            if version is not None:
                conn.execute(
                    insert(t.model_aliases).values(
                        name=name, alias=alias, version=version, updated_at=now()
                    )
                )
            event = {
                "kind": "alias",
                "from_value": f"{alias}: v{old}" if old is not None else None,
                "to_value": f"{alias}: v{version}" if version is not None else None,
                "reason": reason,
                "actor": actor,
            }
            self._event(conn, name, version if version is not None else old, event, None, None)
        return old

    def _event(
        self,
        conn: Connection,
        name: str,
        version: int,
        values: dict[str, Any],
        run_id: str | None,
        step: str | None,
    ) -> None:
        conn.execute(
            insert(t.model_events).values(
                {"from_value": None, "to_value": None, "reason": ""}
                | values
                | {"name": name, "version": version, "run_id": run_id, "step": step}
                | {"created_at": now()}
            )
        )

    def load(self, version: ModelVersion) -> Any:
        ref = self.store.artifact_ref(version.artifact_hash)
        if ref is None:
            raise NotFound(
                f"model '{version.name}' v{version.version}: artifact "
                f"{version.artifact_hash[:12]} is not in the store"
            )
        return self.artifacts.get(ref)
