"""Code snapshots of model versions and the environment of the runs that made them.

`record(conn, name, version, run_id, target)` runs inside the registration's transaction,
in the process that registers (the run's own): it stores the source files of the project
loaded there (`cache/snapshot.py`), each text once under the hash of its content
(`source_texts`), lists them for the version (`model_sources`), and records the run's
Python, installed package versions, working folder and project root once per run
(`run_environments`). Reads: `sources(conn, name, version)`, `environment(conn,
run_id)` and `step_code(conn, cache_key)` (a step's recorded code fingerprint).

Invariants: a text's row is never changed (its key is its content hash); a version's
file list is written once, with the version; a run's environment is the one its first
registration saw.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Connection, and_, insert, select

from orchestrator.cache.hashing import hash_text
from orchestrator.cache.snapshot import (
    installed_packages,
    project_root,
    project_sources,
    python_version,
)
from orchestrator.store import schema as t
from orchestrator.store.base import now


def record(conn: Connection, name: str, version: int, run_id: str, target: str) -> None:
    """Snapshot the project's sources for `name` v`version` and `run_id`'s environment."""
    root = project_root(target)
    files = project_sources(root) if root is not None else {}
    hashes = {path: hash_text(text) for path, text in files.items()}
    known = set(
        conn.execute(
            select(t.source_texts.c.hash).where(t.source_texts.c.hash.in_(set(hashes.values())))
        ).scalars()
    )
    stamp = now()
    fresh = {h: files[p] for p, h in hashes.items() if h not in known}
    if fresh:
        conn.execute(
            insert(t.source_texts),
            [{"hash": h, "text": text, "created_at": stamp} for h, text in fresh.items()],
        )
    if hashes:
        conn.execute(
            insert(t.model_sources),
            [{"name": name, "version": version, "path": p, "hash": h} for p, h in hashes.items()],
        )
    if environment(conn, run_id) is None:
        conn.execute(
            insert(t.run_environments).values(
                run_id=run_id,
                python=python_version(),
                packages=installed_packages(),
                cwd=os.getcwd(),
                root=None if root is None else str(root),
                created_at=stamp,
            )
        )


def sources(conn: Connection, name: str, version: int) -> dict[str, str]:
    """`{path: text}` of the files snapshotted for `name` v`version` (empty: none)."""
    q = (
        select(t.model_sources.c.path, t.source_texts.c.text)
        .join(t.source_texts, t.source_texts.c.hash == t.model_sources.c.hash)
        .where(and_(t.model_sources.c.name == name, t.model_sources.c.version == version))
        .order_by(t.model_sources.c.path)
    )
    return {path: text for path, text in conn.execute(q)}


def environment(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """A run's recorded Python, packages, working folder and project root, or None."""
    row = conn.execute(
        select(t.run_environments).where(t.run_environments.c.run_id == run_id)
    ).first()
    return None if row is None else dict(row._mapping)


def step_code(conn: Connection, cache_key: str) -> dict[str, str] | None:
    """The code fingerprint (`component -> hash`) of a cache entry, or None if pruned."""
    code = conn.execute(
        select(t.cache_entries.c.code).where(t.cache_entries.c.cache_key == cache_key)
    ).scalar()
    return None if code is None else dict(code)
