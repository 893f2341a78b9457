"""Values passed in memory on the in-process executors: a child that returns its own
element (the same content, so the same hash) keeps its output in memory for the step
that consumes the map, which reads nothing back from the artifact store."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import pipeline, step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine
from orchestrator.execution.local import make_executor
from orchestrator.store.metadata import MetadataStore


@step
def items(n: int = 6) -> list[int]:
    return [k % 4 for k in range(n)]  # repeated elements too


@step
def same(x: int) -> int:
    return x  # its output is its element's content


@step
def total(xs: list[int]) -> int:
    return sum(xs)


@pipeline
def echoed(n: int = 6) -> None:
    total(same.map(x=items(n)))


@pytest.mark.parametrize("executor", ["thread", "sequential"])
def test_a_child_returning_its_element_is_read_from_memory(tmp_path: Path, executor: str) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    artifacts = ArtifactStore(tmp_path / "artifacts")
    engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
    try:
        result = engine.run(echoed.build(), target="tests:echoed", executor=executor)
        assert {str(s.state) for s in result.steps} == {"succeeded"}
        assert artifacts.loads == 0  # nothing decoded from a file: all passed in memory
        fresh = ArtifactStore(tmp_path / "artifacts")
        assert fresh.get(result.step("total").outputs[0]) == 0 + 1 + 2 + 3 + 0 + 1  # type: ignore[union-attr]
    finally:
        engine.close()
        store.close()
