"""`CacheResolver` on a real SQLite store and artifact folder: hit, explained miss, a
corrupt entry dropped, resume of a `cache=False` step, and the cache-only lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from shapes import diamond

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.cache.keys import KeyMaker, KeyParts
from orchestrator.engine.loop import Engine, RunResult
from orchestrator.engine.resolver import CacheResolver
from orchestrator.execution.local import make_executor
from orchestrator.model.graph import Graph
from orchestrator.store.metadata import MetadataStore


@pytest.fixture
def stores(tmp_path: Path) -> tuple[MetadataStore, ArtifactStore]:
    store = MetadataStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    yield store, ArtifactStore(tmp_path / "artifacts")
    store.close()


def run(stores: tuple[MetadataStore, ArtifactStore], graph: Graph) -> RunResult:
    store, artifacts = stores
    engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
    try:
        return engine.run(graph, target="shapes:diamond_pipeline")
    finally:
        engine.close()


def key_of(graph: Graph, result: RunResult, name: str) -> KeyParts:
    outs = {s.name: s.outputs for s in result.steps}
    node = graph.nodes[name]
    return KeyMaker().make(node, {a: outs[o.node][o.index].hash for a, o in node.inputs().items()})


def test_a_step_run_before_is_a_hit_naming_its_run(stores) -> None:
    g = diamond()
    first = run(stores, g)
    resolver = CacheResolver(*stores, g.pipeline)
    entry, reason = resolver.lookup("left", g.nodes["left"].step, key_of(g, first, "left"))
    assert entry is not None and entry["run_id"] == first.run_id
    assert reason["cache"] == "hit" and reason["from_run"] == first.run_id
    assert [o["hash"] for o in entry["outputs"]] == [first.step("left").outputs[0].hash]


def test_a_miss_says_what_differs_from_the_closest_entry(stores) -> None:
    first = run(stores, diamond())
    g = diamond(n=5)
    resolver = CacheResolver(*stores, g.pipeline)
    entry, reason = resolver.lookup("load", g.nodes["load"].step, key_of(g, first, "load"))
    assert entry is None
    assert reason["cache"] == "miss"
    assert reason["summary"] == "parameter 'n' changed: 3 -> 5"
    assert reason["compared_with_run"] == first.run_id


def test_a_corrupt_entry_is_dropped_and_the_step_recomputed(stores) -> None:
    store, artifacts = stores
    artifacts.inline_max = 0  # every output a file: corrupt that file
    g = diamond()
    first = run(stores, g)
    ref = first.step("right").outputs[0]
    artifacts.path(ref).write_bytes(b"[9, 9, 9]")
    warned: list[tuple[str, str]] = []
    resolver = CacheResolver(store, artifacts, g.pipeline, warn=lambda s, m: warned.append((s, m)))
    parts = key_of(g, first, "right")
    entry, reason = resolver.lookup("right", g.nodes["right"].step, parts)
    assert entry is None
    assert reason["cache"] == "miss" and reason["summary"].endswith("; recomputed")
    assert ref.hash[:12] in reason["summary"]
    assert warned == [("right", reason["summary"])]
    assert store.cache_get(parts.key) is None  # dropped for every later run too


def test_resume_reuses_a_cache_false_step_of_the_resumed_run_only(stores) -> None:
    g = diamond()
    first = run(stores, g)
    nocache = g.nodes["left"].step.with_options(cache=False)
    parts = key_of(g, first, "left")
    plain = CacheResolver(*stores, g.pipeline)
    assert plain.lookup("left", nocache, parts)[1] == {
        "cache": "disabled",
        "summary": "cache disabled for this step (cache=False)",
    }
    resumed = CacheResolver(*stores, g.pipeline, resumed_from=first.run_id)
    entry, reason = resumed.lookup("left", nocache, parts)
    assert entry is not None and reason["cache"] == "resumed"
    assert reason["from_run"] == first.run_id
    # a step outside a partial run's selection reads the cache even with cache=False
    entry, reason = plain.lookup("left", nocache, parts, cache_only=True)
    assert entry is not None and reason["cache"] == "hit"


def test_entries_recorded_by_this_run_are_hits_before_they_are_committed(stores) -> None:
    g = diamond()
    first = run(stores, g)
    resolver = CacheResolver(*stores, g.pipeline)
    parts = key_of(g, first, "side")
    moved = parts.__class__(parts.key + "x", parts.code, parts.params, parts.inputs, parts.salt)
    assert resolver.lookup("side", g.nodes["side"].step, moved)[0] is None
    entry = {"cache_key": moved.key, "outputs": [first.step("side").outputs[0].to_json()]}
    resolver.remember(entry | {"run_id": "r1"})
    got, reason = resolver.lookup("side", g.nodes["side"].step, moved)
    assert got is not None and reason["from_run"] == "r1"
