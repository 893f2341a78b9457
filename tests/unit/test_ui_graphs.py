"""The UI's drawing of a composed pipeline: sub-pipeline calls as groups, named outputs.

`run_graph` gives the page each namespace as a group (a Cytoscape compound node) and each
step its `parent`; the step panel labels outputs by their declared names.
"""

from __future__ import annotations

from test_model import outer

from orchestrator.ui.graphs import named_outputs, run_graph, shape_of


def test_groups_and_parents_of_a_composed_pipeline() -> None:
    shape = shape_of(outer, {})
    graph = run_graph(shape, [])
    groups = {g["id"]: g for g in graph["groups"]}
    assert set(groups) == {
        "middle",
        "middle.inner",
        "middle.inner_2",
        "again",
        "again.inner",
        "again.inner_2",
    }
    assert groups["again"] == {"id": "again", "label": "again (middle)", "parent": None}
    assert groups["again.inner_2"]["parent"] == "again"
    assert groups["again.inner_2"]["label"] == "inner_2 (inner)"
    parents = {n["id"]: n["parent"] for n in graph["nodes"]}
    assert parents["source"] is None and parents["again.inner_2.scale"] == "again.inner_2"
    assert all(n["state"] == "pending" for n in graph["nodes"])


def test_groups_come_from_dotted_names_when_no_shape_is_known() -> None:
    steps = [
        {"name": "ds.fit", "kind": "train", "state": "succeeded", "outputs": [], "inputs": {}},
        {"name": "load", "kind": "ingest", "state": "succeeded", "outputs": [], "inputs": {}},
    ]
    graph = run_graph(None, steps)
    assert graph["groups"] == [{"id": "ds", "label": "ds", "parent": None}]
    assert {n["id"]: n["parent"] for n in graph["nodes"]} == {"ds.fit": "ds", "load": None}


def test_outputs_are_labelled_by_their_declared_names() -> None:
    shape = shape_of(outer, {})
    row = {"name": "middle.halves", "outputs": [{"hash": "a"}, {"hash": "b"}]}
    assert [o["name"] for o in named_outputs(shape, row)["outputs"]] == ["head", "tail"]
    unnamed = named_outputs(shape, {"name": "source", "outputs": [{"hash": "c"}]})
    assert "name" not in unnamed["outputs"][0]  # the panel keeps "output 0"
