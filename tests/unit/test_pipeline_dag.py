"""`model.dag.Dag` plans exactly as networkx would: same topological order, same
ancestors and descendants, a cycle found where networkx finds one.

Graphs are built the same way in both (seeded random insertions of nodes and edges,
mostly forward so most are acyclic), then compared node by node.
"""

from __future__ import annotations

import random

import networkx as nx
import pytest

from orchestrator.model.dag import Dag


def _pair(seed: int) -> tuple[Dag, nx.DiGraph]:
    rng = random.Random(seed)
    names = [f"s{i}" for i in range(rng.randint(1, 12))]
    rng.shuffle(names)
    dag, ref = Dag(), nx.DiGraph()
    dag.add_nodes_from(names)
    ref.add_nodes_from(names)
    for _ in range(rng.randint(0, 24)):
        a, b = rng.randrange(len(names)), rng.randrange(len(names))
        if a == b:
            continue
        if a > b and rng.random() < 0.9:
            a, b = b, a
        dag.add_edge(names[a], names[b])
        ref.add_edge(names[a], names[b])
    return dag, ref


@pytest.mark.parametrize("seed", range(300))
def test_the_same_plan_as_networkx(seed: int) -> None:
    dag, ref = _pair(seed)
    assert dag.edges() == list(ref.edges())
    order = dag.topological_order()
    if not nx.is_directed_acyclic_graph(ref):
        assert order is None
        return
    assert order == list(nx.topological_sort(ref))
    for n in ref:
        assert list(dag.predecessors(n)) == list(ref.predecessors(n))
        assert list(dag.successors(n)) == list(ref.successors(n))
        assert dag.ancestors(n) == nx.ancestors(ref, n)
        assert dag.descendants(n) == nx.descendants(ref, n)


def test_an_edge_added_twice_is_one_edge() -> None:
    dag = Dag()
    dag.add_edge("a", "b")
    dag.add_edge("a", "b")
    assert dag.edges() == [("a", "b")]
    assert list(dag.predecessors("b")) == ["a"]
    assert dag.topological_order() == ["a", "b"]


def test_to_networkx_is_the_same_graph() -> None:
    dag, ref = _pair(7)
    got = dag.to_networkx()
    assert list(got.nodes) == list(ref.nodes) and list(got.edges) == list(ref.edges)
