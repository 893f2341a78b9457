"""The engine's SQLite log is checkpointed by a thread of its own, not in its commits.

A real store and engine run chains of no-op steps (one commit per step, about ten log
pages each). Past `checkpoint.AFTER` commits the writing connection checkpoints nothing
itself, yet the database file takes the pages while the store is still open (SQLite on
its own would wait for 1000 pages), the log stays bounded, and everything is readable
from another connection. A short run starts no thread and changes nothing.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine
from orchestrator.execution.local import make_executor
from orchestrator.model.pipeline import Pipeline
from orchestrator.store import checkpoint
from orchestrator.store.metadata import MetadataStore


@step
def noop(a: int | None = None, i: int = 0) -> int:
    return i


def chain(n: int, offset: int = 0) -> Any:
    spec: list[dict[str, Any]] = [{"name": "s0", "step": noop, "params": {"i": offset}}]
    for k in range(1, n):
        params = {"i": k + offset}
        spec.append({"name": f"s{k}", "step": noop, "inputs": {"a": f"s{k - 1}"}, "params": params})
    return Pipeline.from_spec("chain", spec)


class Bench:
    def __init__(self, root: Path) -> None:
        self.db = root / "orchestrator.db"
        self.store = MetadataStore(f"sqlite:///{self.db}")
        artifacts = ArtifactStore(root / "artifacts")
        self.engine = Engine(self.store, artifacts, lambda name: make_executor(name, artifacts))

    def run(self, n: int, offset: int = 0) -> None:
        result = self.engine.run(chain(n, offset), target="tests:chain", executor="sequential")
        assert {str(s.state) for s in result.steps} == {"succeeded"}

    def autocheckpoint(self) -> int:
        (pages,) = self.store.fast().conn.execute("PRAGMA wal_autocheckpoint").fetchone()
        return int(pages)

    def close(self) -> None:
        self.engine.close()
        self.store.close()


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    yield b
    b.close()


def _wal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "orch-wal"]


def _wait_for(check: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_a_long_run_is_checkpointed_by_a_thread_while_the_store_is_open(bench: Bench) -> None:
    bench.run(3)
    size = bench.db.stat().st_size  # no checkpoint yet: the pages are in the log
    bench.run(2 * checkpoint.AFTER, offset=1000)  # well under SQLite's own 1000 pages
    assert bench.autocheckpoint() == 0  # the writing connection checkpoints nothing
    assert _wal_threads()
    assert _wait_for(lambda: bench.db.stat().st_size > size), "nothing was checkpointed"
    reader = sqlite3.connect(bench.db)
    try:
        (steps,) = reader.execute("SELECT count(*) FROM step_runs").fetchone()
        (busy, log, done) = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        reader.close()
    assert steps == 3 + 2 * checkpoint.AFTER
    assert busy == 0 and done == log


def test_closing_the_store_stops_the_thread_and_restores_sqlites_checkpoints(
    tmp_path: Path,
) -> None:
    bench = Bench(tmp_path)
    bench.run(checkpoint.AFTER + 5)
    conn = bench.store.fast().conn
    assert _wal_threads()
    bench.store.writer.close()  # the hot path's connection goes back to the pool
    assert not _wal_threads()
    (pages,) = conn.execute("PRAGMA wal_autocheckpoint").fetchone()
    assert pages == checkpoint.DEFAULT_PAGES
    bench.close()
    again = MetadataStore(f"sqlite:///{bench.db}")
    try:
        assert len(again.step_runs(again.list_runs()[0]["id"])) == checkpoint.AFTER + 5
    finally:
        again.close()


def test_a_short_run_starts_no_thread_and_keeps_sqlites_checkpoints(bench: Bench) -> None:
    bench.run(5)
    assert not _wal_threads()
    assert bench.autocheckpoint() == checkpoint.DEFAULT_PAGES
