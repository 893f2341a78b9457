"""The model registry's audit trail, aliases and server heartbeats, on SQLite and on a
real PostgreSQL server: every registration, stage change and alias move is one event
naming who, when, from -> to and why; a promotion never overwrites the registered reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.errors import NotFound, OrchestratorError
from orchestrator.store import schema as t
from orchestrator.store.metadata import MetadataStore
from orchestrator.store.model_servers import ModelServers
from orchestrator.store.registry import StoreRegistry

RUN = "0f1e2d3c4b5a"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    s = MetadataStore(url)
    yield s
    s.close()


@pytest.fixture
def registry(store: MetadataStore, tmp_path: Path) -> StoreRegistry:
    return StoreRegistry(store, ArtifactStore(tmp_path / "artifacts"))


def register(registry: StoreRegistry, h: str, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "artifact_hash": h,
        "metrics": {"r2": 0.5},
        "run_id": RUN,
        "step": "deploy",
        "params": {},
        "data_hash": "d1",
        "reason": f"registered {h}",
    }
    return registry.register("m", **(args | kw))


def trail(registry: StoreRegistry) -> list[tuple[Any, ...]]:
    """The events oldest first as (version, kind, from, to, actor, reason)."""
    return [
        (e["version"], e["kind"], e["from_value"], e["to_value"], e["actor"], e["reason"])
        for e in reversed(registry.events("m"))
    ]


def test_every_stage_change_is_an_event_and_reasons_are_kept(registry: StoreRegistry) -> None:
    register(registry, "h1")
    register(registry, "h2", run_id=None, step=None)
    registry.promote("m", 1, "beats nothing", actor="deploy", run_id=RUN, step="deploy")
    registry.promote("m", 2, "better on holdout", actor="cli")
    registry.promote("m", 2, "again", actor="ui")  # already production: nothing to record
    registry.promote("m", 1, "rolled back", actor="ui")
    assert trail(registry) == [
        (1, "registered", None, "candidate", "deploy", "registered h1"),
        (2, "registered", None, "candidate", "api", "registered h2"),
        (1, "stage", "candidate", "production", "deploy", "beats nothing"),
        (1, "stage", "production", "archived", "cli", "replaced by v2: better on holdout"),
        (2, "stage", "candidate", "production", "cli", "better on holdout"),
        (2, "stage", "production", "archived", "ui", "replaced by v1: rolled back"),
        (1, "stage", "archived", "production", "ui", "rolled back"),
    ]
    assert [v.reason for v in registry.versions("m")] == ["registered h1", "registered h2"]
    events = registry.events("m")
    promoted_by_step = [e for e in events if e["reason"] == "beats nothing"][0]
    assert (promoted_by_step["run_id"], promoted_by_step["step"]) == (RUN, "deploy")
    assert all(e["created_at"].tzinfo is not None for e in events)
    assert events[0]["created_at"] >= events[-1]["created_at"]


def test_aliases_move_are_recorded_and_resolve(registry: StoreRegistry) -> None:
    for h in ("h1", "h2", "h3"):
        register(registry, h)
    registry.promote("m", 3, "best", actor="cli")
    assert registry.set_alias("m", "champion", 2, "holdout winner", actor="cli") is None
    assert registry.set_alias("m", "staging", 1, actor="ui") is None
    assert registry.set_alias("m", "champion", 3, "moved", actor="ui") == 2
    assert registry.aliases("m") == {"champion": 3, "staging": 1}
    assert registry.resolve("m", "staging").version == 1  # type: ignore[union-attr]
    assert registry.resolve("m", "champion").version == 3  # type: ignore[union-attr]
    assert registry.resolve("m", None).version == 3  # type: ignore[union-attr]
    assert registry.resolve("m", "production").version == 3  # type: ignore[union-attr]
    assert registry.resolve("m", "v2").version == 2  # type: ignore[union-attr]
    registry.set_alias("m", "staging", None, "retired", actor="cli")
    assert registry.aliases("m") == {"champion": 3}
    assert [e for e in trail(registry) if e[1] == "alias"] == [
        (2, "alias", None, "champion: v2", "cli", "holdout winner"),
        (1, "alias", None, "staging: v1", "ui", ""),
        (3, "alias", "champion: v2", "champion: v3", "ui", "moved"),
        (1, "alias", "staging: v1", None, "cli", "retired"),
    ]
    with pytest.raises(NotFound, match=r"model 'm' has no alias 'staging' \(its aliases: champion"):
        registry.resolve("m", "staging")
    with pytest.raises(NotFound, match="no version 9 of model 'm'"):
        registry.resolve("m", "9")
    with pytest.raises(NotFound, match="no version 9 of model 'm'"):
        registry.set_alias("m", "champion", 9)
    with pytest.raises(OrchestratorError, match="alias 'bad name' is not a valid alias name"):
        registry.set_alias("m", "bad name", 1)
    with pytest.raises(OrchestratorError, match="alias 'v7' is not a valid alias name"):
        registry.set_alias("m", "v7", 1)
    assert registry.aliases("m") == {"champion": 3}  # nothing was written by the refusals


def test_servers_beat_and_a_silent_one_is_not_live(store: MetadataStore) -> None:
    servers = ModelServers(store)
    servers.beat("s1", "m", "champion", None, "http://127.0.0.1:1")
    servers.beat("s1", "m", "champion", 3, "http://127.0.0.1:1")
    servers.beat("s2", "m", "production", 2, "http://127.0.0.1:2")
    servers.beat("s3", "other", "production", 1, "http://127.0.0.1:3")
    live = servers.live("m")
    assert [(s["id"], s["selector"], s["version"]) for s in live] == [
        ("s1", "champion", 3),
        ("s2", "production", 2),
    ]
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    with store.tx() as conn:
        conn.execute(
            update(t.model_servers).where(t.model_servers.c.id == "s2").values(heartbeat_at=old)
        )
    assert [s["id"] for s in servers.live("m")] == ["s1"]
    servers.gone("s1")
    assert servers.live("m") == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrading_a_store_gives_existing_versions_their_registered_event(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import insert

    from orchestrator.store import db

    url = f"sqlite:///{tmp_path / 'old.db'}"
    if backend == "postgresql":
        url = str(request.getfixturevalue("pg_url"))
    engine = db.connect(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(db._MIGRATIONS))
    with engine.connect() as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")  # a store as it was before the audit trail
        stamp = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        row = {"stage": "candidate", "artifact_hash": "h", "metrics": {}, "params": {},
               "created_at": stamp, "updated_at": stamp}  # fmt: skip
        conn.execute(insert(t.model_versions), [
            row | {"name": "m", "version": 1, "run_id": RUN, "step": "deploy", "reason": "first"},
            row | {"name": "m", "version": 2, "run_id": None, "step": None, "reason": "by hand"},
        ])  # fmt: skip
    engine.dispose()
    store = MetadataStore(url)
    try:
        reg = StoreRegistry(store, ArtifactStore(tmp_path / "a"))
        assert trail(reg) == [
            (1, "registered", None, "candidate", "deploy", "first"),
            (2, "registered", None, "candidate", "api", "by hand"),
        ]
        assert reg.events("m")[-1]["created_at"] == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    finally:
        store.close()
