"""Cache lookups of steps ready at once are read ahead: a mapped step's children and the
branches of a fan cost one read of their keys' entries (and one of the histories their
misses are explained by), not one read each; a chain's lone steps probe. A re-run finds
its hits in one read of every step's newest entry, whatever the shape. A damaged
artifact found through a read-ahead or prefetched entry is still recomputed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator import pipeline, step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine, RunResult
from orchestrator.execution.local import make_executor
from orchestrator.model.pipeline import Pipeline
from orchestrator.store.metadata import MetadataStore


class CountingStore(MetadataStore):
    """A SQLite store that notes which cache reads the engine makes, and for how many."""

    def count(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def cache_probe(self, key: str, *args: Any, **kw: Any) -> Any:
        self.calls.append(("probe", 1))
        return super().cache_probe(key, *args, **kw)

    def cache_history(self, *args: Any, **kw: Any) -> Any:
        self.calls.append(("history", 1))
        return super().cache_history(*args, **kw)

    def cache_get_many(self, keys: list[str], fast: bool = False) -> Any:
        self.calls.append(("get_many", len(keys)))
        return super().cache_get_many(keys, fast)

    def cache_histories(self, pipeline: str, steps: list[str], *args: Any, **kw: Any) -> Any:
        self.calls.append(("histories", len(steps)))
        return super().cache_histories(pipeline, steps, *args, **kw)

    def cache_prefetch(self, pipeline: str, steps: list[str], eager: bool = False) -> Any:
        self.calls.append(("prefetch", len(steps)))
        return super().cache_prefetch(pipeline, steps, eager)

    def of(self, name: str) -> list[int]:
        return [n for call, n in self.calls if call == name]


@step
def items(n: int = 5) -> list[int]:
    return list(range(n))


@step
def double(x: int) -> int:
    return 2 * x


@step
def total(xs: list[int]) -> int:
    return sum(xs)


@pipeline
def mapped(n: int = 5) -> None:
    total(double.map(x=items(n)))


def run(store: MetadataStore, artifacts: ArtifactStore, graph: Any) -> RunResult:
    engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
    try:
        return engine.run(graph, target="tests:read_ahead")
    finally:
        engine.close()


def states(result: RunResult) -> dict[str, str]:
    return {s.name: str(s.state) for s in result.steps}


def test_a_maps_children_are_looked_up_in_one_read(tmp_path: Path) -> None:
    store = CountingStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    artifacts = ArtifactStore(tmp_path / "artifacts")
    try:
        store.count()
        first = run(store, artifacts, mapped.build({"n": 5}))
        assert {states(first)[f"double[{i}]"] for i in range(5)} == {"succeeded"}
        assert store.of("get_many") == [5] and store.of("histories") == [5]
        assert store.of("history") == []  # each child's miss explained from the one read
        child = first.step("double[3]")
        assert child is not None and child.reason is not None
        assert child.reason["summary"] == "no cache entry for this step yet"

        store.count()
        again = run(store, artifacts, mapped.build({"n": 6}))  # one element more
        got = states(again)
        assert [got[f"double[{i}]"] for i in range(6)] == ["cached"] * 5 + ["succeeded"]
        assert store.of("prefetch") == [3]  # items, double, total: their newest entries
        assert store.of("get_many") == [6] and store.of("histories") == [1]
        assert store.of("probe") == [1, 1, 1]  # items, the map itself, total: new keys
        assert artifacts.get(again.step("total").outputs[0]) == 30  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_damaged_artifact_read_ahead_is_still_recomputed(tmp_path: Path) -> None:
    store = CountingStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    artifacts = ArtifactStore(tmp_path / "artifacts", inline_max=0)  # files to damage
    try:
        store.count()
        first = run(store, artifacts, mapped.build({"n": 4}))
        ref = first.step("double[2]").outputs[0]  # type: ignore[union-attr]
        artifacts.path(ref).write_bytes(b"5")  # same size, other content
        again = run(store, artifacts, mapped.build({"n": 5}))
        got = states(again)
        assert got["double[2]"] == "succeeded" and got["double[1]"] == "cached"
        redone = again.step("double[2]")
        assert redone is not None and redone.reason is not None
        assert redone.reason["summary"].startswith(f"artifact {ref.hash[:12]} is corrupt")
        assert artifacts.verify(ref) is None  # written again
        assert artifacts.get(again.step("total").outputs[0]) == 20  # type: ignore[union-attr]
    finally:
        store.close()


@step
def noop(a: int | None = None, i: int = 0) -> int:
    return i


def fan(width: int) -> Any:
    spec: list[dict[str, Any]] = [{"name": "src", "step": noop, "params": {"i": 0}}]
    spec += [
        {"name": f"m{j}", "step": noop, "inputs": {"a": "src"}, "params": {"i": j + 1}}
        for j in range(width)
    ]
    return Pipeline.from_spec("fan", spec)


def test_the_branches_of_a_fan_are_looked_up_in_one_read(tmp_path: Path) -> None:
    store = CountingStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    artifacts = ArtifactStore(tmp_path / "artifacts")
    try:
        store.count()
        first = run(store, artifacts, fan(4))
        assert set(states(first).values()) == {"succeeded"}
        assert store.of("probe") == [1]  # src alone
        assert store.of("get_many") == [4] and store.of("histories") == [4]
        store.count()
        again = run(store, artifacts, fan(4))
        assert set(states(again).values()) == {"cached"}
        # every step's newest entry in one read: the hits cost no read each
        assert store.calls == [("prefetch", 5)]
    finally:
        store.close()


def chain(length: int, offset: int = 0) -> Any:
    spec: list[dict[str, Any]] = [{"name": "s0", "step": noop, "params": {"i": offset}}]
    spec += [
        {"name": f"s{k}", "step": noop, "inputs": {"a": f"s{k - 1}"}, "params": {"i": k + offset}}
        for k in range(1, length)
    ]
    return Pipeline.from_spec("chain", spec)


def test_a_chains_rerun_finds_its_hits_in_one_read(tmp_path: Path) -> None:
    store = CountingStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    artifacts = ArtifactStore(tmp_path / "artifacts")
    try:
        store.count()
        first = run(store, artifacts, chain(5))
        assert set(states(first).values()) == {"succeeded"}
        assert store.of("probe") == [1] * 5  # lone steps: one probe each
        store.count()
        again = run(store, artifacts, chain(5))
        assert set(states(again).values()) == {"cached"}
        assert store.calls == [("prefetch", 5)]
        store.count()
        moved = run(store, artifacts, chain(5, offset=100))  # every key changed
        assert set(states(moved).values()) == {"succeeded"}
        assert store.of("probe") == [1] * 5  # the newest entries do not match: probed
        reason = moved.step("s2").reason
        assert reason is not None and "i" in reason["summary"]  # explained by history
    finally:
        store.close()


def test_a_damaged_prefetched_entry_is_recomputed(tmp_path: Path) -> None:
    store = CountingStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    artifacts = ArtifactStore(tmp_path / "artifacts", inline_max=0)  # files to damage
    try:
        store.count()
        first = run(store, artifacts, chain(3))
        ref = first.step("s1").outputs[0]  # type: ignore[union-attr]
        artifacts.path(ref).write_bytes(b"7")  # same size, other content
        store.count()
        again = run(store, artifacts, chain(3))
        got = states(again)
        assert got == {"s0": "cached", "s1": "succeeded", "s2": "cached"}
        redone = again.step("s1")
        assert redone is not None and redone.reason is not None
        assert redone.reason["summary"].startswith(f"artifact {ref.hash[:12]} is corrupt")
        assert artifacts.verify(ref) is None  # written again
        assert store.of("prefetch") == [3]
    finally:
        store.close()
