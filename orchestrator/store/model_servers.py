"""Running prediction servers as the metadata store knows them: one row per `orch serve`.

A server registers itself when it starts (`beat`), renews its heartbeat on every poll
with the version it answers with, and removes its row when it stops (`gone`). A server
killed without stopping leaves a row whose heartbeat grows old: `live(name, within)`
lists only those heard from in the last `within` seconds, so a dead one is never shown
as serving.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid

from sqlalchemy import and_, delete, insert, select, update

from orchestrator.store import schema as t
from orchestrator.store.base import Row
from orchestrator.store.metadata import MetadataStore, now


class ModelServers:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def beat(self, server_id: str, name: str, selector: str, version: int | None, url: str) -> None:
        """Record that `server_id` is up and answers with `version` (None: not yet)."""
        stamp = now()
        key = t.model_servers.c.id == server_id
        with self.store.tx() as conn:
            done = conn.execute(
                update(t.model_servers).where(key).values(version=version, heartbeat_at=stamp)
            )
            if done.rowcount == 0:
                conn.execute(
                    insert(t.model_servers).values(
                        id=server_id, name=name, selector=selector, version=version, url=url,
                        host=socket.gethostname(), pid=os.getpid(), started_at=stamp,
                        heartbeat_at=stamp,
                    )
                )  # fmt: skip

    def gone(self, server_id: str) -> None:
        with self.store.tx() as conn:
            conn.execute(delete(t.model_servers).where(t.model_servers.c.id == server_id))

    def live(self, name: str, within: float = 30.0) -> list[Row]:
        """Servers of model `name` heard from in the last `within` seconds, oldest first."""
        since = now() - dt.timedelta(seconds=within)
        q = (
            select(t.model_servers)
            .where(and_(t.model_servers.c.name == name, t.model_servers.c.heartbeat_at >= since))
            .order_by(t.model_servers.c.started_at)
        )
        with self.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]


class ServerBeacon:
    """One server's presence: a fresh id, then `beat(version)` per poll and `gone()`."""

    def __init__(self, servers: ModelServers, name: str, selector: str | None, url: str) -> None:
        self.servers, self.name, self.url = servers, name, url
        self.selector = selector or "production"
        self.id = uuid.uuid4().hex

    def beat(self, version: int | None) -> None:
        self.servers.beat(self.id, self.name, self.selector, version, self.url)

    def gone(self) -> None:
        self.servers.gone(self.id)
