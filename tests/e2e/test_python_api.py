"""The Python API: runs from Python share the CLI's store and cache; values come back.

These tests call `orchestrator.run`, `runs`, `load` in the test's own process (as a
pytest suite or a notebook would) with `home=` the same ORCH_HOME the CLI uses, and check
what the CLI then sees.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from orchtest import DEMO_STEPS, Orch, Project, states

import orchestrator
from orchestrator import api

SPLIT = """
from orchestrator import pipeline, step


@step
def make(n: int = 6) -> list[int]:
    return list(range(n))


@step
def split(xs: list[int]) -> tuple[list[int], list[int]]:
    return xs[: len(xs) // 2], xs[len(xs) // 2 :]


@step
def fit(train: list[int], test: list[int]) -> dict:
    return {"train": sum(train), "test": sum(test)}


@pipeline
def splitter(n: int = 6):
    train, test = split(make(n=n))
    fit(train, test)
"""


def _demo_total(n: int, k: int = 2) -> int:
    xs = range(1, n + 1)
    return sum(x * k for x in xs) + sum((x + 1) * 10 for x in xs)


def test_run_from_python_reads_values_reruns_cached_and_shows_in_the_cli(
    orch: Orch, demo_project: Project
) -> None:
    target = f"{demo_project.path('pipe.py')}:demo"
    first = orchestrator.run(target, params={"n": 4}, home=orch.home)
    assert first.status == "succeeded"
    assert {s.name: s.state for s in first.steps} == dict.fromkeys(DEMO_STEPS, "succeeded")
    assert first.output("total") == _demo_total(4)
    assert first.output("load") == [1, 2, 3, 4]

    again = orchestrator.run(target, params={"n": 4}, home=orch.home)
    assert {s.name: s.state for s in again.steps} == dict.fromkeys(DEMO_STEPS, "cached")
    assert again.output("total") == _demo_total(4)

    listed = orch("runs", "--json")
    assert listed.code == 0, listed.describe()
    assert {first.run_id, again.run_id} <= {r["run_id"] for r in listed.json["runs"]}
    # a cache entry made from Python is a hit for the CLI, and the other way round
    assert states(orch.run("pipe.py:demo", "--param", "n=4")) == dict.fromkeys(DEMO_STEPS, "cached")
    cli = orch.run("pipe.py:demo", "--param", "n=6")
    from_py = orchestrator.run(target, params={"n": 6}, home=orch.home)
    assert {s.state for s in from_py.steps} == {"cached"}
    doc = from_py.to_json()  # the document `orch run --json` prints
    assert set(doc) == set(cli)
    for by_cli, by_py in zip(cli["steps"], doc["steps"], strict=True):
        assert set(by_py) == set(by_cli)
        assert (by_py["name"], by_py["cache_key"]) == (by_cli["name"], by_cli["cache_key"])
        assert by_py["outputs"] == by_cli["outputs"]


def test_a_notebook_runs_twice_in_one_process_quietly(orch: Orch, demo_project: Project) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(demo_project.root)!r})
        import orchestrator
        import pipe

        first = pipe.demo.run(n=3)
        second = pipe.demo.run(n=3)
        third = orchestrator.run(pipe.demo, params={{"k": 5}}, home={str(orch.home)!r})
        print(json.dumps({{
            "states": [[s.state for s in r.steps] for r in (first, second, third)],
            "totals": [r.output("total") for r in (first, second, third)],
        }}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=demo_project.root,
        env=orch.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # nothing but the script's own line on stdout
    assert doc["states"][0] == ["succeeded"] * 5
    assert doc["states"][1] == ["cached"] * 5
    assert doc["totals"] == [_demo_total(3), _demo_total(3), _demo_total(5, k=5)]
    assert "succeeded" not in proc.stderr and "┏" not in proc.stderr  # no progress unasked
    assert len(orchestrator.runs(home=orch.home)) == 3


def test_load_reads_an_earlier_run_by_id_prefix(orch: Orch, project: Project) -> None:
    project.write("split.py", SPLIT)
    target = f"{project.path('split.py')}:splitter"
    early = orchestrator.run(target, home=orch.home)
    orchestrator.run(target, params={"n": 10}, home=orch.home)
    assert orchestrator.load(early.run_id[:6], "fit", home=orch.home) == {"train": 3, "test": 12}
    assert orchestrator.load(early.run_id, "split", 1, home=orch.home) == [3, 4, 5]
    assert orchestrator.load(early.run_id, "split", "0", home=orch.home) == [0, 1, 2]
    history = orchestrator.runs(pipeline="splitter", home=orch.home)
    assert [r.run_id for r in history][-1] == early.run_id
    assert history[-1].output("make") == list(range(6))
    assert history[-1].to_json()["steps"][0]["name"] == "make"


def test_unknown_names_are_one_clear_error(orch: Orch, project: Project) -> None:
    project.write("split.py", SPLIT)
    run = orchestrator.run(f"{project.path('split.py')}:splitter", home=orch.home)
    with pytest.raises(orchestrator.NotFound, match=r"has no step 'fitt' \(did you mean 'fit'\?\)"):
        run.output("fitt")
    with pytest.raises(orchestrator.NotFound, match="step 'split' of run .* has 2 outputs"):
        run.output("split")
    with pytest.raises(orchestrator.NotFound, match="has no output 2; it has 2"):
        run.output("split", 2)
    with pytest.raises(orchestrator.NotFound, match="has no step 'mak' \\(did you mean 'make'"):
        orchestrator.load(run.run_id, "mak", home=orch.home)
    with pytest.raises(orchestrator.NotFound, match="no run 'zzzz'"):
        orchestrator.load("zzzz", "make", home=orch.home)
    why = run.explain("fit")
    assert why["state"] == "succeeded" and why["reason"]["summary"]


def test_a_failed_step_is_data_not_an_exception(orch: Orch, project: Project) -> None:
    project.write(
        "bad.py",
        """
        from orchestrator import pipeline, step

        @step
        def boom() -> int:
            raise ValueError("no good")

        @pipeline
        def bad():
            boom()
        """,
    )
    run = orchestrator.run(f"{project.path('bad.py')}:bad", home=orch.home)
    assert run.status == "failed"
    assert "ValueError: no good" in (run.step("boom").error or "")
    with pytest.raises(orchestrator.StepFailed, match="step 'boom' failed in run .*: ValueError"):
        run.output("boom")
    with pytest.raises(orchestrator.StepFailed) as raised:
        run.raise_for_status()
    assert (raised.value.step, raised.value.run_id) == ("boom", run.run_id)


def test_a_bad_home_is_one_error_from_the_api(tmp_path: Path, demo_project: Project) -> None:
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    target = f"{demo_project.path('pipe.py')}:demo"
    with pytest.raises(orchestrator.OrchestratorError, match="is a file, not a folder"):
        orchestrator.run(target, home=home)
    with pytest.raises(orchestrator.OrchestratorError, match="under /proc"):
        api.runs(home="/proc/orch-home")
