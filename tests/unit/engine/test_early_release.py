"""Children started on their parent's values while its write goes on (`release_early`):
a child runs during its parent's write, yet no step is ever recorded finished before
the steps whose outputs it read; a write that fails after its children started fails
its step and leaves every step below it skipped, recorded as such (cache hits on its
value and a child waiting for its retry too); a hit on a value still being written holds
back what is below it (a map over its list); a step with retries keeps its children
waiting for its write. Each write is held open by a wrapper around the real
`ArtifactStore.put_prepared` until the test has looked at the store from outside."""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from orchestrator import pipeline, step
from orchestrator.artifacts.store import ArtifactRef, ArtifactStore, Prepared
from orchestrator.engine.loop import Engine
from orchestrator.errors import ArtifactError
from orchestrator.execution.local import make_executor
from orchestrator.store.metadata import MetadataStore

STARTED: dict[str, threading.Event] = {}  # step name -> set when its function runs


def _mark(name: str) -> None:
    STARTED.setdefault(name, threading.Event()).set()


@step(kind="ingest")
def big(rows: int = 20_000) -> pd.DataFrame:
    _mark("big")
    return pd.DataFrame({"x": np.arange(rows, dtype=float), "y": np.ones(rows)})


@step
def middle(frame: pd.DataFrame) -> pd.DataFrame:
    _mark("middle")
    return frame.assign(z=frame["x"] * 2)


@step
def total(frame: pd.DataFrame) -> float:
    _mark("total")
    return float(frame["x"].sum())


@step(kind="ingest", cache=False)
def fresh(rows: int = 20_000) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(rows, dtype=float), "y": np.ones(rows)})


@step
def mean(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.describe()


@pipeline
def uncached():
    total(mean(fresh()))


def _mixed_frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(rows, dtype=float), "n": np.arange(rows)})


@step(kind="ingest")
def mixed(rows: int = 20_000) -> pd.DataFrame:
    return _mixed_frame(rows)


@step
def changes_its_input(frame: pd.DataFrame) -> float:
    _mark("changes_its_input")
    frame.iloc[0, 0] = -1.0  # in place, on the very object its parent returned
    frame["n"] *= 3
    frame.fillna(0, inplace=True)
    return float(frame["n"].sum())


@pipeline
def in_place():
    changes_its_input(mixed())


@step(cache=False)
def mid(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(z=frame["x"] * 2)


@step
def mean_z(frame: pd.DataFrame) -> float:
    return float(frame["z"].mean())


@step
def plus_one(v: float) -> float:
    return v + 1


@pipeline
def hits_below_a_fresh_middle():
    plus_one(mean_z(mid(fresh())))


@step
def negatives(frame: pd.DataFrame) -> list[int]:
    return [int(v) for v in frame["x"] if v < 0]  # none: the map below has no elements


@step(cache=False)
def alert(x: int) -> int:
    return x


@step
def count(xs: list[int]) -> int:
    return len(xs)


@pipeline
def alerts():
    count(alert.map(x=negatives(fresh())))


RETRIED_CALLS: list[float] = []


@step(retries=1, retry_backoff=0.5)
def flaky(frame: pd.DataFrame) -> float:
    RETRIED_CALLS.append(time.perf_counter())
    if len(RETRIED_CALLS) == 1:
        raise RuntimeError("the first attempt fails")
    return float(frame["x"].sum())


@pipeline
def flaky_child():
    flaky(fresh())


@step(retries=1)
def big_retried(rows: int = 20_000) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(rows, dtype=float)})


@pipeline
def pair():
    total(big())


@pipeline
def chain():
    total(middle(big()))


@pipeline
def retried():
    total(big_retried())


@pytest.fixture(autouse=True)
def _fresh_marks() -> Iterator[None]:
    STARTED.clear()
    yield
    STARTED.clear()


def _states(db: Path) -> dict[str, str]:
    """The step rows as another process would see them now."""
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT name, state FROM step_runs").fetchall())


def _hold_writes(
    monkeypatch: pytest.MonkeyPatch, hold: Callable[[Prepared], None]
) -> list[tuple[str, dict[str, bool]]]:
    """Wrap the real `put_prepared`: `hold(prepared)` runs first, in the writer's thread.
    Returns a log of (type written, which steps had started by then)."""
    real = ArtifactStore.put_prepared
    log: list[tuple[str, dict[str, bool]]] = []

    def held(self: ArtifactStore, prepared: Prepared) -> ArtifactRef:
        hold(prepared)
        log.append((prepared.ref.type, {n: e.is_set() for n, e in STARTED.items()}))
        return real(self, prepared)

    monkeypatch.setattr(ArtifactStore, "put_prepared", held)
    return log


def _engine(tmp_path: Path) -> tuple[Engine, MetadataStore]:
    store = MetadataStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    artifacts = ArtifactStore(tmp_path / "artifacts")
    return Engine(store, artifacts, lambda name: make_executor(name, artifacts)), store


def _run(tmp_path: Path, graph: Any, target: str, executor: str = "thread") -> Any:
    engine, store = _engine(tmp_path)
    try:
        return engine.run(graph, target=target, executor=executor)
    finally:
        engine.close()
        store.close()


@pytest.mark.parametrize("executor", ["thread", "sequential"])
def test_a_child_runs_during_its_parents_write_and_is_recorded_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    db = tmp_path / "orchestrator.db"
    seen: list[dict[str, str]] = []

    def hold(prepared: Prepared) -> None:
        if STARTED.get("total") is None:  # big's write: wait for its child to run
            STARTED.setdefault("total", threading.Event()).wait(10)
            for _ in range(5):  # the child's end reaches the engine and its batch commits
                threading.Event().wait(0.05)
                seen.append(_states(db))

    log = _hold_writes(monkeypatch, hold)
    result = _run(tmp_path, pair.build(), "pair", executor)

    assert str(result.status) == "succeeded", [s.error for s in result.steps]
    assert log and log[0][1].get("total") is True  # the child ran before big was written
    for states in seen:  # while big's write was held, total was never recorded finished
        assert states.get("total") != "succeeded", states
        assert states.get("big") != "succeeded", states
    assert _states(db) == {"big": "succeeded", "total": "succeeded"}


def test_a_chain_of_early_children_is_recorded_in_its_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "orchestrator.db"
    seen: list[dict[str, str]] = []

    def hold(prepared: Prepared) -> None:
        if "z" in prepared.table.column_names:  # middle's write: it runs after big's
            return
        STARTED.setdefault("total", threading.Event()).wait(10)
        for _ in range(5):
            threading.Event().wait(0.05)
            seen.append(_states(db))

    log = _hold_writes(monkeypatch, hold)
    result = _run(tmp_path, chain.build(), "chain")

    assert str(result.status) == "succeeded", [s.error for s in result.steps]
    assert log[0][1] == {"big": True, "middle": True, "total": True}
    order = ["big", "middle", "total"]
    for states in seen:  # a step recorded finished has every step before it finished
        done = [states.get(n) == "succeeded" for n in order]
        assert done == sorted(done, reverse=True), states
    with sqlite3.connect(db) as conn:
        ended = dict(conn.execute("SELECT name, ended_at FROM step_runs").fetchall())
    assert ended["big"] <= ended["middle"] <= ended["total"]


def test_a_write_that_fails_after_its_child_started_skips_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hold(prepared: Prepared) -> None:
        STARTED.setdefault("total", threading.Event()).wait(10)
        threading.Event().wait(0.1)  # the child has ended (parked) by now, most likely
        raise OSError(errno.ENOSPC, "No space left on device")

    _hold_writes(monkeypatch, hold)
    result = _run(tmp_path, pair.build(), "pair")

    steps = {s.name: s for s in result.steps}
    assert str(result.status) == "failed"
    assert str(steps["big"].state) == "failed"
    assert "No space left on device" in (steps["big"].error or "")
    assert str(steps["total"].state) == "skipped"
    assert STARTED["total"].is_set()  # it had run, on the values in memory
    db = tmp_path / "orchestrator.db"
    assert _states(db) == {"big": "failed", "total": "skipped"}
    with sqlite3.connect(db) as conn:
        attempts = conn.execute("SELECT step, state, error FROM attempts").fetchall()
    assert ("total", "skipped", "skipped: upstream step 'big' failed") in attempts
    assert not [p for p in (tmp_path / "artifacts").rglob("*.arrow")]  # no frame stored

    monkeypatch.undo()  # the same pipeline again: nothing was reused
    again = _run(tmp_path, pair.build(), "pair")
    assert [str(s.state) for s in again.steps] == ["succeeded", "succeeded"]


def test_a_hit_on_a_value_still_being_written_is_recorded_after_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "orchestrator.db"
    first = _run(tmp_path, uncached.build(), "uncached").run_id  # mean, total: entries

    def now() -> dict[str, str]:  # the second run's rows, as another process sees them
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT name, state FROM step_runs WHERE run_id != ?", (first,)
            ).fetchall()
        return dict(rows)

    seen: list[dict[str, str]] = []

    def hold(prepared: Prepared) -> None:
        for _ in range(6):  # fresh's write, held: mean and total are hits meanwhile
            threading.Event().wait(0.05)
            seen.append(now())

    log = _hold_writes(monkeypatch, hold)
    result = _run(tmp_path, uncached.build(), "uncached")

    assert [str(s.state) for s in result.steps] == ["succeeded", "cached", "cached"]
    assert len(log) == 1  # fresh's frame alone was written; the hits were found meanwhile
    assert any(seen)  # the run's rows were committed while the write was held
    for states in seen:  # and no hit on fresh's value was recorded before fresh
        assert "cached" not in states.values(), states
    assert now() == {"fresh": "succeeded", "mean": "cached", "total": "cached"}


def test_a_child_that_changes_its_input_in_place_does_not_change_what_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hold(prepared: Prepared) -> None:  # mixed's write waits until its child changed it
        STARTED.setdefault("changes_its_input", threading.Event()).wait(10)
        threading.Event().wait(0.05)

    log = _hold_writes(monkeypatch, hold)
    result = _run(tmp_path, in_place.build(), "in_place")

    assert str(result.status) == "succeeded", [s.error for s in result.steps]
    assert log[0][1].get("changes_its_input") is True
    steps = {s.name: s for s in result.steps}
    stored = ArtifactStore(tmp_path / "artifacts").get(steps["mixed"].outputs[0])
    pd.testing.assert_frame_equal(stored, _mixed_frame(20_000))  # as returned, unchanged
    expected = float(np.arange(20_000).sum() * 3)
    artifacts = ArtifactStore(tmp_path / "artifacts")
    assert artifacts.get(steps["changes_its_input"].outputs[0]) == expected


def _fail_fresh_write(
    monkeypatch: pytest.MonkeyPatch, after: float, until: Callable[[], bool] | None = None
) -> list[float]:
    """The first prepared write (fresh's) fails with ENOSPC after `after` seconds (or once
    `until()` holds, 10 s at most); the others are written. Returns when it failed."""
    real = ArtifactStore.put_prepared
    failed: list[float] = []

    def held(self: ArtifactStore, prepared: Prepared) -> ArtifactRef:
        if not failed:
            threading.Event().wait(after)
            for _ in range(200):
                if until is None or until():
                    break
                threading.Event().wait(0.05)
            failed.append(time.perf_counter())
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, prepared)

    monkeypatch.setattr(ArtifactStore, "put_prepared", held)
    return failed


def _rows_after(db: Path, first: str) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, state FROM step_runs WHERE run_id != ?", (first,))
        return dict(rows.fetchall())


@pytest.mark.parametrize(
    ("graph", "target", "below"),
    [
        (uncached, "uncached", ["mean", "total"]),
        (hits_below_a_fresh_middle, "hits_below_a_fresh_middle", ["mid", "mean_z", "plus_one"]),
    ],
)
def test_a_failed_write_skips_every_step_below_it_hits_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph: Any, target: str, below: list[str]
) -> None:
    db = tmp_path / "orchestrator.db"
    first = _run(tmp_path, graph.build(), target).run_id  # the steps below: cache entries
    _fail_fresh_write(monkeypatch, 0.4)
    result = _run(tmp_path, graph.build(), target)

    states = {s.name: str(s.state) for s in result.steps}
    assert states == {"fresh": "failed"} | {n: "skipped" for n in below}
    assert _rows_after(db, first) == states  # each one recorded, none finished


def test_a_hit_on_a_value_being_written_holds_back_the_map_below_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "orchestrator.db"
    first = _run(tmp_path, alerts.build(), "alerts").run_id  # negatives: a cache entry
    seen: list[dict[str, str]] = []

    def hold(prepared: Prepared) -> None:
        for _ in range(6):
            threading.Event().wait(0.05)
            seen.append(_rows_after(db, first))

    _hold_writes(monkeypatch, hold)
    result = _run(tmp_path, alerts.build(), "alerts")

    assert str(result.status) == "succeeded", [s.error for s in result.steps]
    for states in seen:  # nothing below fresh was recorded while its write was held
        assert set(states) <= {"fresh"} and states.get("fresh") != "succeeded", states
    assert _rows_after(db, first)["count"] == "cached"


def test_a_child_waiting_for_its_retry_when_its_input_fails_does_not_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    RETRIED_CALLS.clear()
    db = tmp_path / "orchestrator.db"

    def first_attempt_failed() -> bool:  # as the engine recorded it (its retry waits)
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT state FROM attempts WHERE step = 'flaky'").fetchall()
        return rows == [("failed",)]

    failed = _fail_fresh_write(monkeypatch, 0.0, first_attempt_failed)
    result = _run(tmp_path, flaky_child.build(), "flaky_child")

    assert [(s.name, str(s.state)) for s in result.steps] == [
        ("fresh", "failed"),
        ("flaky", "skipped"),
    ]
    assert len(RETRIED_CALLS) == 1 and RETRIED_CALLS[0] < failed[0]  # no second attempt
    with sqlite3.connect(db) as conn:
        attempts = conn.execute("SELECT step, attempt, state FROM attempts").fetchall()
    assert sorted(attempts) == [("flaky", 1, "failed"), ("fresh", 1, "failed")]


def test_a_step_with_retries_keeps_its_children_waiting_for_its_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hold(prepared: Prepared) -> None:
        STARTED.setdefault("total", threading.Event()).wait(0.3)

    log = _hold_writes(monkeypatch, hold)
    result = _run(tmp_path, retried.build(), "retried")

    assert str(result.status) == "succeeded"
    assert log[0][1].get("total") is False  # the child started only after the write


def test_a_prepared_value_is_stored_as_put_stores_it(tmp_path: Path) -> None:
    artifacts = ArtifactStore(tmp_path / "artifacts")
    frame = pd.DataFrame({"a": [1.5, None, 3.0], "g": pd.Categorical(["x", "y", "x"])})
    prepared = artifacts.prepare(frame)
    assert prepared is not None
    ref = artifacts.put_prepared(prepared)
    assert ref == prepared.ref
    assert ref == ArtifactStore(tmp_path / "other").put(frame)
    pd.testing.assert_frame_equal(artifacts.get(ref), frame)
    assert artifacts.prepare({"not": "a frame"}) is None
    assert artifacts.prepare(pd.Series([1, 2], name="s")) is not None


def test_a_prepared_value_whose_bytes_change_is_not_stored(tmp_path: Path) -> None:
    artifacts = ArtifactStore(tmp_path / "artifacts")
    one = artifacts.prepare(pd.DataFrame({"a": [1.0, 2.0]}))
    other = artifacts.prepare(pd.DataFrame({"a": [1.0, 3.0]}))
    assert one is not None and other is not None
    with pytest.raises(ArtifactError, match="came out different from the bytes hashed"):
        artifacts.put_prepared(Prepared(one.ref, other.table))
    assert not [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
