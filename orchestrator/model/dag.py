"""The directed graph of a pipeline's steps, in plain dicts. No I/O.

`Dag` holds what `Graph` needs: nodes and edges in insertion order, predecessors and
successors, ancestors and descendants, a topological order and whether there is a
cycle. It replaces a networkx `DiGraph` on the path every run takes (networkx costs a
noticeable part of a cached `orch run`); `to_networkx()` gives one for anything else.

Invariants: an edge's ends are nodes; adding an edge twice keeps one; `topological_order`
is the order networkx's `topological_sort` gives for the same insertions (generations of
in-degree zero, each in node and edge insertion order), so plans and printouts are
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


class Dag:
    """Nodes and directed edges, each in insertion order."""

    def __init__(self) -> None:
        self._succ: dict[str, dict[str, None]] = {}
        self._pred: dict[str, dict[str, None]] = {}

    @property
    def nodes(self) -> list[str]:
        return list(self._succ)

    def __contains__(self, name: object) -> bool:
        return name in self._succ

    def __len__(self) -> int:
        return len(self._succ)

    def add_node(self, name: str) -> None:
        self._succ.setdefault(name, {})
        self._pred.setdefault(name, {})

    def add_nodes_from(self, names: Iterable[str]) -> None:
        for name in names:
            self.add_node(name)

    def add_edge(self, src: str, dst: str) -> None:
        self.add_node(src)
        self.add_node(dst)
        self._succ[src][dst] = None
        self._pred[dst][src] = None

    def edges(self) -> list[tuple[str, str]]:
        return [(a, b) for a, out in self._succ.items() for b in out]

    def predecessors(self, name: str) -> Iterator[str]:
        return iter(self._pred[name])

    def successors(self, name: str) -> Iterator[str]:
        return iter(self._succ[name])

    def descendants(self, name: str) -> set[str]:
        return _reach(self._succ, name)

    def ancestors(self, name: str) -> set[str]:
        return _reach(self._pred, name)

    def topological_order(self) -> list[str] | None:
        """Every node, parents first; None when there is a cycle."""
        indegree = {n: len(p) for n, p in self._pred.items() if p}
        ready = [n for n, p in self._pred.items() if not p]
        order: list[str] = []
        while ready:
            generation, ready = ready, []
            for node in generation:
                for child in self._succ[node]:
                    indegree[child] -= 1
                    if indegree[child] == 0:
                        ready.append(child)
                        del indegree[child]
            order.extend(generation)
        return None if indegree else order

    def to_networkx(self) -> Any:
        """The same graph as a networkx `DiGraph` (imports networkx)."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(self._succ)
        g.add_edges_from(self.edges())
        return g


def _reach(adjacent: dict[str, dict[str, None]], start: str) -> set[str]:
    """The nodes reachable from `start` along `adjacent`, `start` itself excluded."""
    seen: set[str] = set()
    todo = list(adjacent[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(adjacent[node])
    return seen
