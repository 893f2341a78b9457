"""The graph model at the Python level: composition, names, outputs and parameters.

Pure model code (no store, no executor): building `@pipeline`s into graphs, reading
override trees and command-line text, and the names the graph gives nodes and outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NamedTuple

import pytest
from pydantic import BaseModel

from orchestrator import InvalidPipeline, ParamError, PipelineError, pipeline, step
from orchestrator.model.params import CliText, apply_override, cli_overrides, load_file, nest
from orchestrator.model.pipeline import Pipeline
from orchestrator.model.types import parse_cli_text


class Options(BaseModel):
    size: float = 0.2
    seed: int = 0


class Parts(NamedTuple):
    head: list[int]
    tail: list[int]


@step
def source(n: int = 4) -> list[int]:
    return list(range(n))


@step
def halves(xs: list[int], options: Options = Options()) -> Parts:
    k = round(len(xs) * (1 - options.size))
    return Parts(xs[:k], xs[k:])


@step
def stats(xs: list[int]) -> tuple[Annotated[int, "total"], Annotated[int, "count"]]:
    return sum(xs), len(xs)


@step
def scale(x: int, factor: float = 1.0) -> float:
    return x * factor


@pipeline
def inner(xs, factor: float = 2.0):
    total, _ = stats(xs)
    return scale(total, factor=factor)


@pipeline
def middle(xs, factor: float = 3.0):
    parts = halves(xs)
    return {"head": inner(parts.head, factor=factor), "tail": inner(parts.tail)}


@pipeline
def outer(n: int = 4):
    xs = source(n=n)
    middle(xs)
    middle.named("again")(xs, factor=5.0)


def test_sub_pipelines_are_namespaced_two_levels_deep() -> None:
    g = outer.build()
    assert set(g.order) == {
        "source",
        "middle.halves",
        "middle.inner.stats",
        "middle.inner.scale",
        "middle.inner_2.stats",
        "middle.inner_2.scale",
        "again.halves",
        "again.inner.stats",
        "again.inner.scale",
        "again.inner_2.stats",
        "again.inner_2.scale",
    }
    assert g.groups["again"] == "middle" and g.groups["middle.inner_2"] == "inner"
    assert g.group_of("middle.inner.stats") == "middle.inner"
    assert sorted(g.parents("middle.inner.stats")) == ["middle.halves"]
    stats_input = g.nodes["middle.inner_2.stats"].inputs()["xs"]
    assert (stats_input.node, stats_input.name) == ("middle.halves", "tail")


def test_parameters_flow_from_call_sites_and_overrides_win() -> None:
    g = outer.build({"again.inner.factor": 7, "middle": {"inner_2": {"scale": {"factor": 9}}}})
    assert g.nodes["middle.inner.scale"].bindings["factor"] == 3.0  # the caller's value
    assert g.nodes["middle.inner_2.scale"].bindings["factor"] == 9.0  # a step override
    assert g.nodes["again.inner.scale"].bindings["factor"] == 7.0  # a sub-pipeline override
    assert g.nodes["again.inner_2.scale"].bindings["factor"] == 2.0  # the default
    assert g.params["again"]["factor"] == 5.0 and g.params["again"]["inner"]["factor"] == 7.0
    assert g.params["middle"]["inner_2"]["scale"] == {"factor": 9.0}


def test_recorded_params_rebuild_the_same_graph() -> None:
    first = outer.build(cli_overrides(["n=6", "again.halves.options.size=0.5"]))
    again = outer.build(first.params)
    for name in first.order:
        assert again.nodes[name].bindings.keys() == first.nodes[name].bindings.keys()
        assert again.nodes[name].params() == first.nodes[name].params(), name
    assert again.params == first.params


def test_output_names_from_a_namedtuple_and_annotated_tuple() -> None:
    assert halves.output_names == ["head", "tail"]
    assert stats.output_names == ["total", "count"]
    assert source.output_names == ["output"]
    assert stats.declared_output_names == ["total", "count"]
    assert source.declared_output_names == [None]


def test_duplicate_or_invalid_output_names_are_errors() -> None:
    @step
    def twice() -> tuple[Annotated[int, "x"], Annotated[int, "x"]]:
        return 1, 2

    @step
    def dotted() -> tuple[Annotated[int, "a.b"], int]:
        return 1, 2

    with pytest.raises(PipelineError, match=r"output names \['x', 'x'\] are not unique"):
        twice.outputs  # noqa: B018
    with pytest.raises(PipelineError, match="output name 'a.b' is not valid"):
        dotted.outputs  # noqa: B018


def test_a_step_name_must_follow_the_rule() -> None:
    with pytest.raises(PipelineError, match="step name 'a.b' is not valid: a name starts"):
        step(name="a.b")(lambda: 1)
    with pytest.raises(PipelineError, match="step call name '1st' is not valid"):
        source.named("1st")


def test_an_explicit_name_may_not_collide_with_a_sub_pipeline() -> None:
    @pipeline
    def clash():
        xs = source(_name="prep")
        middle.named("prep")(xs)

    with pytest.raises(PipelineError, match="uses the name 'prep' for a step and for a sub"):
        clash.build()
    # unnamed, the second call is numbered instead
    assert "middle_2.halves" in outer_with(lambda xs: (source(_name="middle"), middle(xs)))


def outer_with(body: Any) -> list[str]:
    @pipeline
    def p():
        body(source())

    return p.build().order


def test_a_pipeline_called_outside_a_build_is_the_plain_function() -> None:
    assert inner([1, 2, 3]) == 12.0  # steps run as functions: scale(sum, factor=2.0)


def test_a_top_level_pipeline_with_inputs_cannot_be_built() -> None:
    with pytest.raises(PipelineError, match="pipeline 'inner' has input"):
        inner.build()


def test_unknown_override_keys_are_reported_together() -> None:
    with pytest.raises(ParamError) as info:
        outer.build({"nn": 1, "middle": {"halvse": {"options": {"size": 0.1}}}})
    text = str(info.value)
    assert "pipeline 'outer' has no parameter 'nn' (did you mean 'n'?)" in text
    assert "has no step 'middle.halvse' (did you mean 'middle.halves'?)" in text


def test_from_spec_groups_dotted_names() -> None:
    g = Pipeline.from_spec(
        "p", [{"name": "a.load", "step": source}, {"name": "b", "step": scale, "params": {"x": 1}}]
    )
    assert g.groups == {"a": ""} and g.group_of("a.load") == "a"
    with pytest.raises(InvalidPipeline, match="step call name 'bad name' is not valid"):
        Pipeline.from_spec("p", [{"name": "g.bad name", "step": source}])


# -- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "text", "expected"),
    [
        (float, "1", 1.0),
        (float, "0.5", 0.5),
        (int, "3", 3),
        (bool, "true", True),
        (str, "123", "123"),
        (str, "a,b", "a,b"),
        (list[str], "engines,crew", ["engines", "crew"]),
        (list[int], "1, 2", [1, 2]),
        (list[int], "[1, 2]", [1, 2]),
        (list[str], "", []),
        (int | None, "null", None),
        (Path, "data/x.csv", Path("data/x.csv")),
        (Any, "[1]", [1]),
    ],
)
def test_cli_text_is_read_for_its_type(annotation: Any, text: str, expected: Any) -> None:
    assert parse_cli_text(annotation, text, "p") == expected


@pytest.mark.parametrize(
    ("annotation", "text", "reason"),
    [
        (float, "true", "Input should be a valid number"),
        (int, "1.5", "Input should be a valid integer"),
        (bool, "1", "Input should be a valid boolean"),
        (list[int], "1,x", "item 1: expected int, got 'x'"),
    ],
)
def test_cli_text_is_strict(annotation: Any, text: str, reason: str) -> None:
    with pytest.raises(ParamError) as info:
        parse_cli_text(annotation, text, "step 's' parameter 'p'")
    assert str(info.value).startswith("step 's' parameter 'p'")
    assert reason in str(info.value)


def test_an_override_sets_fields_of_a_model() -> None:
    got = apply_override(Options, Options(seed=3), {"size": CliText("0.5")}, "p")
    assert got == Options(size=0.5, seed=3)
    with pytest.raises(ParamError, match=r"Options has no field 'sise' \(did you mean 'size'"):
        apply_override(Options, None, {"sise": 1}, "p")


def test_dotted_and_nested_keys_are_one_tree() -> None:
    assert nest({"a.b.c": 1, "a": {"b": {"d": 2}}, "e": 3}) == {
        "a": {"b": {"c": 1, "d": 2}},
        "e": 3,
    }
    tree = cli_overrides(["a.b=1"])
    assert isinstance(tree["a"]["b"], CliText)


def test_params_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [1, 2\n")
    with pytest.raises(ParamError, match=r"params file .*bad.yaml: invalid YAML: line \d"):
        load_file(bad)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(ParamError, match="expected a mapping of parameters at the top, got list"):
        load_file(listing)
    with pytest.raises(ParamError, match=r"expected a \.yaml, \.yml, \.toml or \.json file"):
        load_file(tmp_path / "p.ini")
    with pytest.raises(ParamError, match="cannot read it"):
        load_file(tmp_path / "missing.toml")
