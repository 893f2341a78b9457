"""The up-front check of a partial run: are the outputs it takes from the cache there?

Before a partial run is recorded, the cache-only steps whose whole upstream is
cache-only too (`selection.upfront`) have keys that can be computed now, in topological
order, from the outputs of the hits before them. Each is looked up; the hits are handed
to the run (it reuses them instead of looking up again); a step whose key depends on a
missing output is missing too. Any miss is one `NeverComputed` naming the missing steps
that feed the run's own steps directly, and the command that computes them.
"""

from __future__ import annotations

from orchestrator.artifacts.store import ArtifactRef
from orchestrator.cache.keys import KeyMaker, KeyParts
from orchestrator.engine.resolver import CacheResolver, Entry, Reason
from orchestrator.engine.selection import Plan, never_computed, upfront
from orchestrator.engine.state import bound_refs
from orchestrator.errors import NeverComputed
from orchestrator.model.graph import Graph

Hit = tuple[KeyParts, Entry, Reason]


def preflight(
    graph: Graph, cut: Plan, keys: KeyMaker, resolver: CacheResolver, target: str
) -> dict[str, Hit]:
    """The hits of the up-front cache-only steps; raise `NeverComputed` if any is missing."""
    hits: dict[str, Hit] = {}
    outputs: dict[str, list[ArtifactRef]] = {}
    missing: list[str] = []
    for name in upfront(graph, cut):
        node = graph.nodes[name]
        if any(p in missing for p in graph.parents(name)):
            missing.append(name)  # its key depends on an output that does not exist
            continue
        inputs = {a: r.hash for a, r in bound_refs(node, outputs).items()}
        parts = keys.make(node, inputs)
        entry, reason = resolver.lookup(name, node.step, parts, cache_only=True)
        if entry is None:
            missing.append(name)
            continue
        hits[name] = (parts, entry, reason)
        outputs[name] = [ArtifactRef.from_json(o) for o in entry["outputs"]]
    if missing:
        feeds = [n for n in missing if any(c in cut.selected for c in graph.children(n))]
        raise NeverComputed(never_computed(feeds or missing[-1:], target))
    return hits
