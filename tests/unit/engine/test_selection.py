"""`plan`: the steps a partial run executes and those it takes from the cache."""

from __future__ import annotations

import pytest
from shapes import diamond

from orchestrator.engine.selection import Selection, never_computed, plan, upfront
from orchestrator.errors import PipelineError, SelectionError
from orchestrator.model.step import step


def cut(**kw: str) -> tuple[set[str], set[str]]:
    p = plan(diamond(), Selection.parse(**kw))
    return set(p.selected), set(p.cache_only)


def test_no_selection_runs_everything() -> None:
    p = plan(diamond(), Selection())
    assert set(p.selected) == set(diamond().order) and not p.cache_only


def test_only_runs_those_steps_and_needs_their_upstream() -> None:
    assert cut(only="join") == ({"join"}, {"load", "left", "right"})
    assert cut(only="left,side") == ({"left", "side"}, {"load"})


def test_from_runs_a_step_and_all_downstream() -> None:
    assert cut(from_="left") == ({"left", "join", "report"}, {"load", "right"})


def test_to_runs_a_step_and_all_upstream() -> None:
    assert cut(to="left") == ({"load", "left"}, set())
    assert cut(to="join") == ({"load", "left", "right", "join"}, set())


def test_tags_run_the_tagged_steps() -> None:
    assert cut(tags="docs") == ({"side"}, {"load"})
    assert cut(tags="final,docs") == ({"report", "side"}, {"load", "left", "right", "join"})


def test_filters_intersect() -> None:
    assert cut(from_="left", to="join") == ({"left", "join"}, {"load", "right"})
    assert cut(from_="load", tags="model") == ({"join", "report"}, {"load", "left", "right"})


def test_unknown_names_are_one_error_with_suggestions() -> None:
    with pytest.raises(SelectionError) as exc:
        plan(diamond(), Selection.parse(only="jion", to="nope", tags="modl"))
    assert str(exc.value) == (
        "pipeline 'diamond_pipeline': --only: no step 'jion' (did you mean 'join'?); "
        "--to: no step 'nope'; --tags: no step has tag 'modl' (did you mean 'model'?) "
        f"(steps: {', '.join(diamond().order)})"
    )


def test_a_selection_of_nothing_is_an_error() -> None:
    with pytest.raises(SelectionError, match="the selection --only side --from left matches no"):
        plan(diamond(), Selection.parse(only="side", from_="left"))


def test_upfront_lists_cache_only_steps_with_only_cache_only_upstream() -> None:
    g = diamond()
    assert upfront(g, plan(g, Selection.parse(only="join"))) == [
        n for n in g.order if n in {"load", "left", "right"}
    ]
    # right needs load, which this run executes: its key is known only after load
    assert upfront(g, plan(g, Selection.parse(only="load,join"))) == []


def test_the_never_computed_error_names_the_command_to_run_first() -> None:
    assert never_computed(["split"], "pipe.py:t") == (
        "step 'split' was never run with these inputs; run it first: orch run pipe.py:t --to split"
    )
    assert never_computed(["a", "b"], "T") == (
        "steps 'a', 'b' were never run with these inputs; run them first: orch run T --to a,b"
    )


def test_the_selection_round_trips_through_its_record() -> None:
    sel = Selection.parse(only="a, b", from_="c", tags="x")
    assert sel.to_json() == {"only": ["a", "b"], "from": ["c"], "tags": ["x"]}
    assert Selection.from_json(sel.to_json()) == sel
    assert Selection.from_json(None) == Selection() and not Selection()
    assert sel.flags() == "--only a,b --from c --tags x"


def test_tags_are_validated_on_the_step() -> None:
    def f() -> int:
        return 1

    assert step(tags=["a", "b", "a"])(f).tags == ("a", "b")
    assert step(f).with_options(tags=("x",)).tags == ("x",)
    with pytest.raises(PipelineError, match="step 'f': tags must be a tuple of strings"):
        step(tags="ab")(f)
    with pytest.raises(PipelineError, match=r"step 'f': tag 'a,b' is not a name"):
        step(tags=("a,b",))(f)


def test_the_progress_table_lists_only_the_steps_of_a_partial_run() -> None:
    from orchestrator.cli.progress import Progress

    g = diamond()
    members = plan(g, Selection.parse(to="join")).members
    bar = Progress(g, quiet=True, steps=members)
    assert bar.order == [n for n in g.order if n in {"load", "left", "right", "join"}]
    assert bar.label == "diamond_pipeline (4 steps)"
    assert bar._table().row_count == 4
    assert Progress(g, quiet=True)._table().row_count == len(g.order) == 6
