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


def _row(name: str, state: str = "succeeded", **kw: object) -> dict[str, object]:
    return {"name": name, "kind": "train", "state": state, "outputs": [], "inputs": {}} | kw


def test_mapped_items_fold_into_their_parent_with_a_count() -> None:
    steps = [
        _row("load", duration=0.5, outputs=[{"hash": "h-load"}]),
        _row("train", duration=3.0),
        *(
            _row(
                f"train[{i}]",
                "failed" if i == 2 else "succeeded",
                inputs={"xs": "h-load"},
                outputs=[{"hash": f"h{i}"}],
            )
            for i in range(3)
        ),  # fmt: skip
        _row("pick", inputs={"a": "h0", "b": "h1"}),
    ]
    graph = run_graph(None, steps)
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert set(nodes) == {"load", "train", "pick"}
    assert nodes["train"]["count"] == 3
    assert nodes["train"]["states"] == {"succeeded": 2, "failed": 1}
    assert nodes["train"]["duration"] == 3.0 and nodes["load"]["duration"] == 0.5
    assert "count" not in nodes["load"]
    edges = {(e["source"], e["target"], e["input"]) for e in graph["edges"]}
    assert edges == {("load", "train", "xs"), ("train", "pick", "a"), ("train", "pick", "b")}


def test_items_without_a_parent_row_still_fold_into_one_node() -> None:
    graph = run_graph(None, [_row("fit[0]"), _row("fit[1]", "running"), _row("fit[10]")])
    [node] = graph["nodes"]
    assert (node["id"], node["count"], node["states"]) == ("fit", 3, {"succeeded": 2, "running": 1})


def test_timeline_places_each_started_step_within_the_run() -> None:
    import datetime as dt

    from orchestrator.ui.graphs import timeline

    t0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    at = lambda s: t0 + dt.timedelta(seconds=s)  # noqa: E731
    run = {"started_at": t0, "ended_at": at(10)}
    steps = [
        _row("b", started_at=at(2), ended_at=at(10)),
        _row("a", started_at=at(0), ended_at=at(2)),
        _row("never", "skipped"),
        _row("quick", "cached", started_at=at(5), ended_at=at(5)),
    ]
    got = timeline(run, steps)
    assert got["span"] == 10.0
    bars = {b["name"]: b for b in got["bars"]}
    assert [b["name"] for b in got["bars"]] == ["a", "b", "quick"]  # by start; unstarted out
    assert (bars["a"]["left"], bars["a"]["width"]) == (0.0, 20.0)
    assert (bars["b"]["left"], bars["b"]["width"]) == (20.0, 80.0)
    assert bars["quick"]["width"] == 0.4  # an instant step is still visible
    running = timeline({"started_at": t0, "ended_at": None}, [_row("r", started_at=at(1))])
    assert running["bars"][0]["end"] > 1 and running["span"] >= running["bars"][0]["end"]
