"""Sweep grids and their expansion into one graph: axes, combinations, draws, sharing."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from orchestrator import ParamError, pipeline, step
from orchestrator.model.grid import combinations, parse_axis, parse_grid, sample
from orchestrator.model.params import CliText
from orchestrator.model.sweep import keep, plan_sweep, restore


@step(kind="ingest")
def load(n: int = 4) -> list[int]:
    return list(range(n))


@step(kind="feature")
def scale(xs: list[int], k: int = 1) -> list[int]:
    return [x * k for x in xs]


@step(kind="train")
def fit(xs: list[int], c: float = 1.0) -> float:
    return sum(xs) * c


@step(kind="evaluate")
def judge(m: float) -> dict[str, float]:
    return {"score": m}


@pipeline
def small(n: int = 4):
    judge(fit(scale(load(n=n))))


def test_values_split_on_commas_outside_brackets_and_quotes() -> None:
    axis = parse_axis("train.sizes", '[1,2],[3],"a,b", c')
    assert list(axis.values) == ["[1,2]", "[3]", '"a,b"', "c"]


def test_an_integer_range_lists_every_integer_and_a_float_range_needs_random() -> None:
    assert list(parse_axis("k", "1..4").listed()) == ["1", "2", "3", "4"]
    with pytest.raises(ParamError, match=r"grid c=0\.5\.\.2: a range like this is drawn"):
        parse_axis("c", "0.5..2").listed()
    with pytest.raises(ParamError, match="needs LO < HI"):
        parse_axis("c", "3..1")
    with pytest.raises(ParamError, match="given twice"):
        parse_grid(["c=1,2", "c=3"])


def test_the_full_grid_varies_the_first_axis_slowest() -> None:
    axes = parse_grid({"a": [1, 2], "b": "x,y"})
    assert combinations(axes) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]


def test_draws_repeat_with_their_seed_are_distinct_and_stay_in_their_span() -> None:
    axes = parse_grid({"c": "log:0.001..1000", "k": "2..5"})
    first = sample(axes, 30, seed=3)
    assert first == sample(axes, 30, seed=3)
    assert first != sample(axes, 30, seed=4)
    assert len({(d["c"], d["k"]) for d in first}) == 30
    assert all(0.001 <= float(d["c"]) <= 1000 and 2 <= int(d["k"]) <= 5 for d in first)
    assert len({int(d["k"]) for d in first}) == 4
    finite = parse_grid({"a": [1, 2, 3], "b": [1, 2]})
    assert sorted(map(str, sample(finite, 50, seed=0))) == sorted(
        map(str, combinations(finite))
    )  # without replacement: each combination once


def test_nodes_alike_in_every_combination_are_shared_the_rest_copied_once_each() -> None:
    plan = plan_sweep(small, [{"scale.k": k, "fit.c": c} for k in (1, 2) for c in (0.5, 1.0)])
    g = plan.graph
    assert set(g.nodes) == {
        "load",
        "c0.scale",
        "c2.scale",
        *(f"c{i}.{s}" for i in range(4) for s in ("fit", "judge")),
    }
    assert g.parents("c1.fit") == ["c0.scale"] and g.parents("c3.fit") == ["c2.scale"]
    assert g.parents("c0.scale") == ["load"]
    assert plan.nodes["c3"] == {
        "load": "load",
        "scale": "c2.scale",
        "fit": "c3.fit",
        "judge": "c3.judge",
    }
    assert {c: g.groups[c] for c in ("c0", "c3")} == {"c0": "small", "c3": "small"}
    assert g.params == {"n": 4}
    assert [c.params for c in plan.combinations][1] == {"scale.k": 1, "fit.c": 1.0}
    record = plan.record(grid={})
    assert record["combinations"][2]["evaluate"] == {"judge": "c2.judge"}


def test_a_bad_value_is_the_builders_error_naming_the_step_and_parameter() -> None:
    with pytest.raises(ParamError, match=r"step 'fit' parameter 'c': expected float"):
        plan_sweep(small, [{"fit.c": 1.0}, {"fit.c": "high"}])
    with pytest.raises(ParamError, match=r"step 'fit' has no parameter 'd'"):
        plan_sweep(small, [{"fit.d": 1}])


def test_a_recorded_sweep_rebuilds_to_the_same_graph_for_resume_and_the_ui() -> None:
    from orchestrator.sweeps import rebuild
    from orchestrator.ui.graphs import shape_of

    plan = plan_sweep(small, [{"fit.c": c} for c in (0.5, 1.0, 2.0)], {"n": 3})
    record = plan.record(grid={"fit.c": "0.5,1,2"}, base=keep({"n": 3}))
    again = rebuild(small, record).graph
    assert again.order == plan.graph.order
    assert again.nodes["c2.fit"].bindings["c"] == 2.0
    shape = shape_of(small, {"n": 3}, record)
    assert [n for n, _ in shape.nodes] == plan.graph.order
    assert ("load", "scale", "xs") in shape.edges and ("scale", "c1.fit", "xs") in shape.edges
    assert ("c1", "small") in shape.groups


@step
def label(xs: list[int], tag: str = "x", k: int = 0) -> str:
    return f"{tag}{len(xs)}{k}"


@pipeline
def tagged(tag: str = "x"):
    label(load(), tag=tag)


def test_command_line_text_is_kept_as_text_so_a_rebuild_reads_it_strictly_again() -> None:
    from orchestrator.sweeps import rebuild

    base = {"label": {"k": CliText("7")}}
    plan = plan_sweep(tagged, [{"tag": CliText("1")}, {"tag": CliText("true")}], base)
    record = json.loads(json.dumps(plan.record(base=keep(base))))  # as the store keeps it
    assert record["combinations"][0]["values"] == {"tree": {"tag": "1"}, "text": [["tag"]]}
    assert restore(record["base"]) == base and isinstance(
        restore(record["base"])["label"]["k"], CliText
    )
    again = rebuild(tagged, record).graph
    assert again.nodes["c0.label"].bindings == {"xs": again.nodes["c0.label"].bindings["xs"],
                                                "tag": "1", "k": 7}  # fmt: skip
    assert again.nodes["c1.label"].bindings["tag"] == "true"


class Opts(BaseModel):
    k: int = 1


@step
def use(xs: list[int], opts: Opts = Opts()) -> int:
    return len(xs) * opts.k


@pipeline
def opted():
    use(load())


def test_the_record_of_a_python_grid_of_models_is_json() -> None:
    from orchestrator.sweeps import build_sweep

    plan, record = build_sweep(opted, {"use.opts": [Opts(k=1), Opts(k=3)]})
    assert json.loads(json.dumps(record))["grid"] == {"use.opts": [{"k": 1}, {"k": 3}]}
    assert plan.graph.nodes["c1.use"].bindings["opts"] == Opts(k=3)
    assert [c["params"] for c in record["combinations"]] == [
        {"use.opts": {"k": 1}},
        {"use.opts": {"k": 3}},
    ]
