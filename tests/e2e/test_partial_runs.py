"""Partial runs as a user types them: `orch run T --only / --from / --to / --tags`.

The pipeline (`pipe.py:chain`)::

    raw ─┬─> split ──> train ──> evaluate
         └─> report            (report is tagged "docs", train "model", evaluate "model")

Each step appends its name to `calls.txt` when it really runs, so a test sees what ran
and what was taken from the cache. Steps outside the selection that it needs come from
the cache and never run; steps it does not need are not part of the run; a needed output
that was never computed is one error naming the step to run first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from orchtest import Orch, Project, states

CHAIN = """
import os
from pathlib import Path

from orchestrator import pipeline, step


def called(name: str) -> None:
    with open("calls.txt", "a") as f:
        f.write(name + "\\n")


@step(kind="ingest")
def raw(n: int) -> list[int]:
    called("raw")
    return list(range(n))


@step(kind="feature")
def split(xs: list[int]) -> list[int]:
    called("split")
    return xs[: len(xs) // 2]


@step(kind="train", tags=("model",))
def train(xs: list[int], alpha: float = 1.0) -> float:
    called("train")
    if Path("fail").exists():
        raise RuntimeError("training data is bad")
    return sum(xs) * alpha


@step(kind="evaluate", tags=("model",))
def evaluate(m: float) -> float:
    called("evaluate")
    return m / 2


@step(tags=("docs",))
def report(xs: list[int]) -> int:
    called("report")
    return len(xs)


@pipeline
def chain(n: int = 10):
    xs = raw(n)
    evaluate(train(split(xs)))
    report(xs)
"""


@pytest.fixture
def chain(project: Project) -> Project:
    project.write("pipe.py", CHAIN)
    return project


def calls(project: Project) -> list[str]:
    """What ran since the last call (and forget it)."""
    p = project.path("calls.txt")
    if not p.exists():
        return []
    names = p.read_text().split()
    p.unlink()
    return names


def test_to_runs_a_step_and_its_upstream_only(orch: Orch, chain: Project) -> None:
    doc = orch.run("pipe.py:chain", "--to", "split")
    assert doc["status"] == "succeeded"
    assert states(doc) == {"raw": "succeeded", "split": "succeeded"}
    assert sorted(calls(chain)) == ["raw", "split"]


def test_only_takes_what_it_needs_from_the_cache(orch: Orch, chain: Project) -> None:
    orch.run("pipe.py:chain", "--to", "split")
    calls(chain)
    doc = orch.run("pipe.py:chain", "--only", "train")
    assert states(doc) == {"raw": "cached", "split": "cached", "train": "succeeded"}
    assert calls(chain) == ["train"]


def test_only_never_runs_a_needed_step_even_with_cache_disabled(orch: Orch, chain: Project) -> None:
    chain.edit("pipe.py", '@step(kind="feature")', '@step(kind="feature", cache=False)')
    orch.run("pipe.py:chain", "--to", "split")
    calls(chain)
    doc = orch.run("pipe.py:chain", "--only", "train,evaluate")
    assert states(doc) == {
        "raw": "cached",
        "split": "cached",
        "train": "succeeded",
        "evaluate": "succeeded",
    }
    assert calls(chain) == ["train", "evaluate"]


def test_from_reruns_downstream_and_reuses_upstream(orch: Orch, chain: Project) -> None:
    orch.run("pipe.py:chain")
    calls(chain)
    doc = orch.run("pipe.py:chain", "--from", "train", "--param", "train.alpha=0.5")
    assert states(doc) == {
        "raw": "cached",
        "split": "cached",
        "train": "succeeded",
        "evaluate": "succeeded",
    }
    assert calls(chain) == ["train", "evaluate"]


def test_tags_select_the_tagged_steps(orch: Orch, chain: Project) -> None:
    orch.run("pipe.py:chain", "--to", "raw")
    calls(chain)
    doc = orch.run("pipe.py:chain", "--tags", "docs")
    assert states(doc) == {"raw": "cached", "report": "succeeded"}
    assert calls(chain) == ["report"]
    orch.run("pipe.py:chain", "--to", "split")
    calls(chain)
    doc = orch.run("pipe.py:chain", "--tags", "model,docs")
    assert set(states(doc)) == {"raw", "split", "train", "evaluate", "report"}
    assert states(doc)["report"] == "cached" and states(doc)["split"] == "cached"
    assert sorted(calls(chain)) == ["evaluate", "train"]


def test_a_needed_output_never_computed_is_one_error_before_anything_runs(
    orch: Orch, chain: Project
) -> None:
    res = orch("run", "pipe.py:chain", "--from", "train")
    target = f"{Path(chain.root).resolve() / 'pipe.py'}:chain"
    assert res.code == 2, res.describe()
    assert res.err.strip() == (
        "error: step 'split' was never run with these inputs; "
        f"run it first: orch run {target} --to split"
    )
    assert "Traceback" not in res.err
    assert calls(chain) == []
    assert orch.runs() == []  # no run is recorded


def test_a_needed_output_missing_after_a_selected_step_fails_that_step(
    orch: Orch, chain: Project
) -> None:
    orch.run("pipe.py:chain", "--to", "split")
    calls(chain)
    # raw runs again with n=6; split's output for that input was never computed
    doc = orch.run("pipe.py:chain", "--only", "raw,train", "--param", "n=6", code=1)
    got = states(doc)
    assert got == {"raw": "succeeded", "split": "failed", "train": "skipped"}
    error = next(s["error"] for s in doc["steps"] if s["name"] == "split")
    assert error.startswith("step 'split' was never run with these inputs; run it first: ")
    assert error.endswith("pipe.py:chain --to split")
    assert calls(chain) == ["raw"]


def test_unknown_names_are_one_error_with_a_suggestion(orch: Orch, chain: Project) -> None:
    res = orch("run", "pipe.py:chain", "--only", "trian", "--tags", "modle")
    assert res.code == 2, res.describe()
    assert res.err.strip() == (
        "error: pipeline 'chain': --only: no step 'trian' (did you mean 'train'?); "
        "--tags: no step has tag 'modle' (did you mean 'model'?) "
        "(steps: raw, split, report, train, evaluate)"
    )
    assert orch.runs() == []
    empty = orch("run", "pipe.py:chain", "--only", "train", "--from", "evaluate")
    assert empty.code == 2, empty.describe()
    assert empty.err.strip() == (
        "error: the selection --only train --from evaluate matches no step of pipeline 'chain'"
    )


def test_the_selection_is_recorded_and_resume_keeps_it(orch: Orch, chain: Project) -> None:
    orch.run("pipe.py:chain", "--to", "split")
    chain.write("fail", "")
    failed = orch.run("pipe.py:chain", "--from", "train", code=1)
    assert states(failed)["train"] == "failed" and states(failed)["evaluate"] == "skipped"
    shown = orch.show(failed["run_id"])
    assert shown["trigger"]["selection"] == {"from": ["train"]}
    text = orch("show", failed["run_id"])
    assert "selection: --from train" in text.out, text.describe()
    chain.path("fail").unlink()
    calls(chain)
    res = orch("resume", failed["run_id"], "--json")
    assert res.code == 0, res.describe()
    assert states(res.json) == {
        "raw": "cached",
        "split": "cached",
        "train": "succeeded",
        "evaluate": "succeeded",
    }
    assert calls(chain) == ["train", "evaluate"]
