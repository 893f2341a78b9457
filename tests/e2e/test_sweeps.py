"""Sweeps: one run over a grid whose shared prefix runs once, a table best first, cached re-runs.

The pipeline `tune.py:tune` appends each step's name to `counts.txt` when the step really
executes, so the tests count executions rather than trusting reported states alone.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
from orchtest import Orch, Project, states

import orchestrator

TUNE = """
import math
from pathlib import Path

from pydantic import BaseModel

from orchestrator import pipeline, step

COUNTS = Path(__file__).with_name("counts.txt")


def _count(name: str) -> None:
    with COUNTS.open("a") as f:
        f.write(name + "\\n")


@step(kind="ingest")
def ingest(n: int = 40) -> list[float]:
    _count("ingest")
    return [float(i % 7) for i in range(n)]


@step(kind="feature")
def features(xs: list[float], scale: bool = True) -> list[float]:
    _count("features")
    top = max(xs)
    return [x / top for x in xs] if scale else xs


@step(kind="train")
def train(xs: list[float], C: float = 1.0, depth: int = 1) -> dict[str, float]:
    _count("train")
    if C > 500 and COUNTS.with_name("diverge").exists():
        raise ValueError(f"C={C} diverges")
    return {"C": C, "depth": float(depth), "mean": sum(xs) / len(xs)}


class Report(BaseModel):
    metrics: dict[str, float]
    rows: int


@step(kind="evaluate")
def evaluate(model: dict[str, float], xs: list[float]) -> Report:
    _count("evaluate")
    score = -(math.log10(model["C"]) ** 2) - 1 / model["depth"] + model["mean"]
    return Report(metrics={"score": score, "loss": -score}, rows=len(xs))


@pipeline
def tune(n: int = 40):
    xs = features(ingest(n=n))
    evaluate(train(xs), xs)
"""


def _score(c: float, depth: int, scale: bool = True) -> float:
    xs = [float(i % 7) for i in range(40)]
    mean = sum(x / 6 for x in xs) / 40 if scale else sum(xs) / 40
    return -(math.log10(c) ** 2) - 1 / depth + mean


@pytest.fixture
def tune(project: Project) -> Project:
    project.write("tune.py", TUNE)
    return project


def _counts(project: Project) -> Counter[str]:
    path = project.path("counts.txt")
    return Counter(path.read_text().split()) if path.exists() else Counter()


def _sweep(orch: Orch, *args: str, code: int = 0) -> list[dict]:
    res = orch("sweep", "tune.py:tune", *args, "--json")
    assert res.code == code, res.describe()
    assert "Traceback" not in res.err, res.describe()
    assert isinstance(res.json, list), res.describe()
    return res.json


def _error(orch: Orch, *args: str) -> str:
    res = orch("sweep", "tune.py:tune", *args)
    assert res.code == 2, res.describe()
    assert "Traceback" not in res.err, res.describe()
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.describe()
    return lines[0]


GRID = ("--grid", "train.C=0.1,1,10", "--grid", "train.depth=1,2")


def test_a_3x2_sweep_runs_the_prefix_once_reruns_cached_and_widens_to_new_combinations(
    orch: Orch, tune: Project
) -> None:
    rows = _sweep(orch, *GRID)
    assert _counts(tune) == {"ingest": 1, "features": 1, "train": 6, "evaluate": 6}
    assert len(rows) == 6
    assert set(rows[0]) == {"run_id", "combination", "params", "metrics", "status"}
    assert {r["combination"] for r in rows} == {f"c{i}" for i in range(6)}
    assert all(r["status"] == "succeeded" for r in rows)
    assert {(r["params"]["train.C"], r["params"]["train.depth"]) for r in rows} == {
        (c, d) for c in (0.1, 1.0, 10.0) for d in (1, 2)
    }
    assert all(isinstance(r["params"]["train.depth"], int) for r in rows)
    for r in rows:
        expected = _score(r["params"]["train.C"], r["params"]["train.depth"])
        assert r["metrics"]["score"] == pytest.approx(expected)
        assert set(r["metrics"]) == {"score", "loss"}  # `rows` is not a metric
    scores = [r["metrics"]["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)  # best first, maximized by default
    assert rows[0]["params"] == {"train.C": 1.0, "train.depth": 2}

    run_id = rows[0]["run_id"]
    shown = orch.show(run_id)
    assert shown["trigger"]["kind"] == "sweep"
    assert shown["trigger"]["grid"] == {"train.C": "0.1,1,10", "train.depth": "1,2"}
    names = set(states(shown))
    assert {"ingest", "features"} <= names
    assert {f"c{i}.{s}" for i in range(6) for s in ("train", "evaluate")} <= names
    assert len(orch.runs()) == 1  # one run for the whole sweep
    text = orch("show", run_id, "--no-logs").out
    assert (
        "trigger: sweep (6 combinations of train.C=0.1,1,10, train.depth=1,2; "
        f"the table: orch sweep-table {run_id})"
    ) in text
    res = orch("sweep-table", run_id[:6], "--json")
    assert res.json == rows

    again = _sweep(orch, *GRID)
    assert _counts(tune) == {"ingest": 1, "features": 1, "train": 6, "evaluate": 6}
    assert set(states(orch.show(again[0]["run_id"])).values()) == {"cached"}
    assert again == [r | {"run_id": again[0]["run_id"]} for r in rows]

    wide = _sweep(orch, "--grid", "train.C=0.1,1,10,100", "--grid", "train.depth=1,2")
    assert _counts(tune) == {"ingest": 1, "features": 1, "train": 8, "evaluate": 8}
    got = states(orch.show(wide[0]["run_id"]))
    ran = sorted(n for n, s in got.items() if s == "succeeded")
    assert ran == ["c6.evaluate", "c6.train", "c7.evaluate", "c7.train"]
    assert len(wide) == 8
    assert {r["params"]["train.C"] for r in wide} == {0.1, 1.0, 10.0, 100.0}


def test_a_step_varied_by_one_axis_runs_once_per_value_of_that_axis_on_processes(
    orch: Orch, tune: Project
) -> None:
    axes = ("--grid", "features.scale=true,false", "--grid", "train.C=0.1,1")
    rows = _sweep(orch, *axes, "--executor", "process")
    assert _counts(tune) == {"ingest": 1, "features": 2, "train": 4, "evaluate": 4}
    assert {r["params"]["features.scale"] for r in rows} == {True, False}
    for r in rows:
        p = r["params"]
        assert r["metrics"]["score"] == pytest.approx(_score(p["train.C"], 1, p["features.scale"]))
    names = set(states(orch.show(rows[0]["run_id"])))
    assert {"ingest", "c0.features", "c2.features"} <= names
    assert "features" not in names


def test_bad_grid_keys_and_values_are_one_error_line_naming_them(orch: Orch, tune: Project) -> None:
    assert _error(orch, "--grid", "train.D=1,2") == ("error: step 'train' has no parameter 'D'")
    line = _error(orch, "--grid", "train.depth=1,two")
    assert line.startswith("error: step 'train' parameter 'depth': expected int, got 'two'")
    line = _error(orch, "--grid", "train.C=0.1,true")
    assert line.startswith("error: step 'train' parameter 'C': expected float, got 'true'")
    line = _error(orch, "--grid", "alpha=1,2")
    assert line.startswith("error: pipeline 'tune' has no parameter 'alpha'")
    line = _error(orch, "--grid", "train.C=0.01..10")
    assert line.startswith("error: grid train.C=0.01..10: a range like this is drawn at random")
    assert _error(orch, "--grid", "train.C") == "error: --grid expects PATH=VALUES, got 'train.C'"
    assert _error(orch) == (
        "error: a sweep needs at least one grid axis, e.g. --grid train.C=0.1,1,10"
    )
    line = _error(orch, "--grid", "train.C=log:0..10", "--random", "3")
    assert line == "error: grid train.C=log:0..10: a log range needs ends above 0"
    assert not _counts(tune)  # nothing ran
    assert orch.runs() == []


def test_random_sampling_is_reproducible_from_its_seed_and_stays_in_range(
    orch: Orch, tune: Project
) -> None:
    axes = ("--grid", "train.C=log:0.01..100", "--grid", "train.depth=1..3", "--random", "5")
    first = _sweep(orch, *axes, "--seed", "7")
    assert len(first) == 5
    for r in first:
        assert 0.01 <= r["params"]["train.C"] <= 100
        assert r["params"]["train.depth"] in (1, 2, 3)
    assert _counts(tune)["train"] == 5
    same = _sweep(orch, *axes, "--seed", "7")
    assert sorted(map(str, (r["params"] for r in same))) == sorted(
        map(str, (r["params"] for r in first))
    )
    assert _counts(tune)["train"] == 5  # the same draws: all cached
    other = _sweep(orch, *axes, "--seed", "8")
    assert {str(r["params"]) for r in other} != {str(r["params"]) for r in first}
    grid = _sweep(orch, "--grid", "train.C=1,10", "--grid", "train.depth=1..3", "--random", "9")
    assert len(grid) == 6  # every listed combination once, never twice


def test_metric_and_direction_are_chosen_and_a_failed_combination_ranks_last(
    orch: Orch, tune: Project
) -> None:
    tune.write("diverge", "")
    rows = _sweep(orch, "--grid", "train.C=1,10,1000", "--metric", "loss", code=1)
    by_score = _sweep(orch, "--grid", "train.C=1,10,1000", "--metric", "score", code=1)
    assert [r["combination"] for r in by_score] == [r["combination"] for r in rows]
    assert [r["params"]["train.C"] for r in rows] == [1.0, 10.0, 1000.0]
    assert rows[-1]["status"] == "failed" and rows[-1]["metrics"] == {}
    losses = [r["metrics"]["loss"] for r in rows[:2]]
    assert losses == sorted(losses)  # a loss is minimized by default
    run_id = rows[0]["run_id"]
    res = orch("sweep-table", run_id, "--metric", "loss", "--maximize", "--json")
    assert res.code == 0, res.describe()
    assert [r["params"]["train.C"] for r in res.json] == [10.0, 1.0, 1000.0]
    res = orch("sweep-table", run_id, "--metric", "accuracy")
    assert res.code == 2, res.describe()
    assert res.err.strip() == (
        f"error: sweep run {run_id} has no metric 'accuracy'; its metrics: loss, score"
    )

    tune.path("diverge").unlink()
    res = orch("resume", run_id, "--json")
    assert res.code == 0, res.describe()
    got = states(res.json)
    assert sorted(n for n, s in got.items() if s == "succeeded") == ["c2.evaluate", "c2.train"]
    res = orch("sweep-table", res.json["run_id"], "--json")
    assert [r["status"] for r in res.json] == ["succeeded"] * 3


def test_the_plain_table_lists_every_combination_best_first(orch: Orch, tune: Project) -> None:
    res = orch("sweep", "tune.py:tune", "--grid", "train.C=0.1,1,10")
    assert res.code == 0, res.describe()
    lines = res.out.strip().splitlines()
    assert lines[0].startswith("sweep run ") and "ranked by loss (lower is better)" in lines[0]
    assert lines[1].split() == ["rank", "combination", "train.C", "loss", "score", "status"]
    assert [line.split()[:3] for line in lines[2:]] == [
        ["1", "c1", "1.0"],
        ["2", "c0", "0.1"],
        ["3", "c2", "10.0"],
    ]


def test_sweeps_from_python_return_the_run_its_table_and_the_best(
    orch: Orch, tune: Project
) -> None:
    target = f"{tune.path('tune.py')}:tune"
    result = orchestrator.sweep(target, grid={"train.C": [0.1, 1.0], "train.depth": "1,2"},
                                home=orch.home)  # fmt: skip
    assert result.run.status == "succeeded"
    assert result.metric == "loss" and result.maximize is False  # the first by name
    assert result.best is not None
    assert result.best["params"] == {"train.C": 1.0, "train.depth": 2}
    assert len(result.table()) == 4
    assert _counts(tune) == {"ingest": 1, "features": 1, "train": 4, "evaluate": 4}
    again = orchestrator.get_sweep(result.run.run_id, metric="score", home=orch.home)
    assert again.maximize is True
    assert [r["combination"] for r in again.table()] == [r["combination"] for r in result.table()]

    from orchestrator.loader import load_target

    pipe = load_target(target)
    wider = pipe.sweep(grid={"train.C": [0.1, 1.0, 10.0], "train.depth": [1, 2]}, home=orch.home)
    assert len(wider.table()) == 6
    assert _counts(tune)["train"] == 6
    with pytest.raises(orchestrator.ParamError, match="step 'train' parameter 'depth'"):
        orchestrator.sweep(target, grid={"train.depth": ["x"]}, home=orch.home)


def test_the_builtin_classification_pipeline_sweeps_its_C(orch: Orch, project: Project) -> None:
    res = orch("sweep", "classification", "--grid", "C=0.01,10", "--json", timeout=300)
    assert res.code == 0, res.describe()
    rows = res.json
    assert [r["params"]["C"] for r in rows] in ([0.01, 10.0], [10.0, 0.01])
    accuracies = [r["metrics"]["accuracy"] for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    assert accuracies[0] > accuracies[1]  # C=0.01 underfits iris
    got = states(orch.show(rows[0]["run_id"]))
    for shared in ("ingest", "validate", "features"):
        assert got[shared] == "succeeded"
    assert {"c0.train", "c1.train", "c0.evaluate", "c1.evaluate"} <= set(got)


def test_the_builtin_regression_pipeline_ranks_by_its_primary_metric(
    orch: Orch, project: Project
) -> None:
    args = ("sweep", "regression", "--grid", "alpha=0.01,100", "--json")
    res = orch(*args, timeout=300)
    assert res.code == 0, res.describe()
    assert {r["params"]["alpha"] for r in res.json} == {0.01, 100.0}
    r2 = [r["metrics"]["r2"] for r in res.json]
    assert r2 == sorted(r2, reverse=True) and r2[0] > r2[1]  # its report's primary metric
    res = orch(*args, "--metric", "rmse")
    rmse = [r["metrics"]["rmse"] for r in res.json]
    assert rmse == sorted(rmse) and rmse[0] < rmse[1]  # an error is minimized
