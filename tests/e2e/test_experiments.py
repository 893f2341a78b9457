"""Experiments end to end: runs with different parameters, their metrics in `orch runs`
(sorted, filtered, searched, with parameter and metric columns) and `orch compare`
naming exactly the parameters, code and data that differ, on a real SQLite store and a
real scikit-learn dataset."""

from __future__ import annotations

from typing import Any

import pytest
from orchtest import Orch, Project

import orchestrator

EXPERIMENT = """
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from orchestrator import FileInput, Metrics, current, pipeline, step

SCALE = 1.0


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["target"]) * SCALE


@step(kind="ingest")
def load(path: FileInput) -> pd.DataFrame:
    return pd.read_csv(path)


@step(kind="train")
def train(data: pd.DataFrame, C: float = 1.0) -> LogisticRegression:
    ctx = current()
    ctx.log_params(solver="lbfgs", tag="baseline")
    for i, iters in enumerate((1, 5, 50)):
        partial = LogisticRegression(C=C, max_iter=iters).fit(prepare(data), data["target"])
        ctx.log_metric("train_accuracy", partial.score(prepare(data), data["target"]), step=i)
    return LogisticRegression(C=C, max_iter=500).fit(prepare(data), data["target"])


@step(kind="evaluate")
def evaluate(model: LogisticRegression, data: pd.DataFrame) -> Metrics:
    x, y = prepare(data), data["target"]
    return Metrics(
        accuracy=float(model.score(x, y)), log_loss=float(log_loss(y, model.predict_proba(x)))
    )


@pipeline
def exp(path: str = "data.csv", C: float = 1.0):
    data = load(path=path)
    evaluate(train(data, C=C), data)
"""

C_VALUES = ["0.001", "0.01", "0.1", "1", "10"]


def _write_data(project: Project, rows: int) -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    cols = ["mean radius", "mean texture", "mean smoothness", "target"]
    project.write("data.csv", frame[cols].head(rows).to_csv(index=False))


def _runs(orch: Orch, *args: str) -> list[dict[str, Any]]:
    res = orch("runs", "--pipeline", "exp", *args, "--json")
    assert res.code == 0, res.describe()
    return res.json["runs"]


@pytest.fixture
def five(orch: Orch, project: Project) -> dict[str, str]:
    """Five runs of the experiment, C = 0.001 .. 10: {C text: run id}."""
    project.write("exp.py", EXPERIMENT)
    _write_data(project, 300)
    return {c: orch.run("exp.py:exp", "-p", f"C={c}")["run_id"] for c in C_VALUES}


def test_runs_table_sorts_filters_and_searches_by_metric_and_param(
    orch: Orch, five: dict[str, str]
) -> None:
    rows = _runs(orch, "--metric", "log_loss", "--sort", "-log_loss", "--columns", "params,metrics")
    assert len(rows) == 5
    losses = [r["metrics"]["log_loss"] for r in rows]
    assert losses == sorted(losses, reverse=True)
    assert len(set(losses)) == 5  # C changes the model: the runs are told apart
    assert {r["params"]["C"] for r in rows} == {0.001, 0.01, 0.1, 1.0, 10.0}
    assert all(r["params"]["tag"] == "baseline" for r in rows)
    assert all(set(r["metrics"]) == {"accuracy", "log_loss", "train_accuracy"} for r in rows)
    ascending = _runs(orch, "--sort", "log_loss")
    assert [r["run_id"] for r in ascending] == [r["run_id"] for r in reversed(rows)]

    only = _runs(orch, "--filter", "C=1")
    assert [r["run_id"] for r in only] == [five["1"]]
    threshold = sorted(losses)[2]
    above = _runs(orch, "--filter", f"log_loss>{threshold}")
    assert {r["run_id"] for r in above} == {
        r["run_id"] for r in rows if r["metrics"]["log_loss"] > threshold
    }
    assert len(above) == 2
    assert _runs(orch, "--filter", "C>=1", "--filter", "C<10")[0]["run_id"] == five["1"]
    assert [r["run_id"] for r in _runs(orch, "--search", five["0.1"][:8])] == [five["0.1"]]

    table = orch("runs", "--pipeline", "exp", "--sort", "-log_loss", "--columns", "C,log_loss")
    assert table.code == 0, table.describe()
    assert "params.C" in table.out and "metrics.log_loss" in table.out
    assert table.out.index(rows[0]["run_id"]) < table.out.index(rows[-1]["run_id"])

    # from Python: the same order, with metrics and params on each Run
    runs = orchestrator.runs(pipeline="exp", sort="-log_loss", home=orch.home)
    assert [r.run_id for r in runs] == [r["run_id"] for r in rows]
    assert runs[0].metrics["log_loss"] == rows[0]["metrics"]["log_loss"]
    assert [p["position"] for p in runs[0].series["train_accuracy"]] == [0, 1, 2]
    assert runs[0].params["solver"] == "lbfgs"


def test_runs_options_with_bad_input_say_which_in_one_line(orch: Orch, project: Project) -> None:
    project.write("exp.py", EXPERIMENT)
    _write_data(project, 100)
    orch.run("exp.py:exp")
    cases = {
        ("--filter", "C"): "error: --filter 'C': expected NAME=VALUE or NAME>NUMBER",
        ("--filter", "r2>x"): "error: --filter 'r2>x': 'x' is not a number for '>'",
        ("--sort", "-nope"): "error: --sort 'nope': no run here has a metric or parameter",
        ("--columns", "nope"): "error: --columns 'nope': no run here has a metric or parameter",
    }
    for args, text in cases.items():
        res = orch("runs", *args)
        assert res.code == 2, res.describe()
        assert res.err.startswith(text), res.err
        assert "Traceback" not in res.err and len(res.err.strip().splitlines()) == 1


def test_compare_names_the_exact_parameter_code_and_data_differences(
    orch: Orch, project: Project
) -> None:
    project.write("exp.py", EXPERIMENT)
    _write_data(project, 300)
    first = orch.run("exp.py:exp", "-p", "C=1")["run_id"]
    second = orch.run("exp.py:exp", "-p", "C=0.01")["run_id"]
    project.edit("exp.py", "SCALE = 1.0", "SCALE = 2.0")
    _write_data(project, 250)
    third = orch.run("exp.py:exp", "-p", "C=1")["run_id"]

    res = orch("compare", first, second, third, "--json")
    assert res.code == 0, res.describe()
    doc = res.json
    assert [r["run_id"] for r in doc["runs"]] == [first, second, third]
    loss = doc["metrics"]["log_loss"]
    values = loss["values"]
    assert set(values) == {first, second, third} and loss["lower_is_better"] is True
    assert loss["best"] == min(values, key=lambda k: values[k])
    assert sorted(doc["series"]["train_accuracy"][first], key=lambda p: p["position"])

    to_second, to_third = doc["differences"]
    assert (to_second["from"], to_second["to"]) == (first, second)
    assert [(c["step"], c["text"]) for c in to_second["changes"]] == [
        ("train", "parameter 'C' changed: 1.0 -> 0.01"),
        ("evaluate", "input 'model' changed (new content hash, from step 'train')"),
    ]
    assert [(c["step"], c["kind"], c["text"]) for c in to_third["changes"]] == [
        ("load", "data", "data file 'path' changed: data.csv (new content hash)"),
        ("train", "code", "code changed: constant exp.SCALE"),
        ("train", "input", "input 'data' changed (new content hash, from step 'load')"),
        ("evaluate", "code", "code changed: constant exp.SCALE"),
        ("evaluate", "input", "input 'data' changed (new content hash, from step 'load')"),
        ("evaluate", "input", "input 'model' changed (new content hash, from step 'train')"),
    ]

    text = orch("compare", first, second, third)
    assert text.code == 0, text.describe()
    assert "metrics (* best)" in text.out
    assert f"{second} vs {first}: 2 differences" in text.out
    assert "train: parameter 'C' changed: 1.0 -> 0.01" in text.out

    alone = orch("compare", first)
    assert alone.code == 2 and alone.err.strip() == "error: compare needs at least two runs, got 1"
    missing = orch("compare", first, "ffffffffffff")
    assert missing.code == 2 and "no run 'ffffffffffff'" in missing.err


TRACKED = """
from orchestrator import current, pipeline, step


@step(kind="train")
def fit(lr: float = 0.5, epochs: int = 4) -> list[float]:
    ctx = current()
    ctx.log_params(optimizer="sgd", layers=[8, 4])
    losses = []
    for epoch in range(epochs):
        losses.append(round(1.0 / (1 + lr * epoch), 6))
        ctx.log_metric("loss", losses[-1], step=epoch)
    ctx.log_artifact({"weights": [lr, 2 * lr]}, "weights")
    ctx.log_artifact("notes.txt", "notes")
    return losses


@step(kind="evaluate")
def score(losses: list[float]) -> dict[str, float]:
    return {"final_loss": losses[-1], "epochs": float(len(losses))}


@pipeline
def tracked(lr: float = 0.5):
    score(fit(lr=lr))
"""

BAD_METRIC = """
from orchestrator import current, pipeline, step


@step
def noisy() -> int:
    current().log_metric("r2", "high")
    return 1


@pipeline
def bad():
    noisy()
"""


def test_process_steps_log_metrics_params_and_artifacts_and_a_cache_hit_keeps_them(
    orch: Orch, project: Project
) -> None:
    project.write("tracked.py", TRACKED)
    project.write("notes.txt", "trained on a sunny day\n")
    first = orch.run("tracked.py:tracked", "--executor", "process")
    again = orch.run("tracked.py:tracked", "--executor", "process")
    assert {s["state"] for s in again["steps"]} == {"cached"}
    expected = {"loss": 1 / 2.5, "final_loss": 1 / 2.5, "epochs": 4.0}
    assert first["metrics"] == pytest.approx(expected)
    assert again["metrics"] == first["metrics"]  # taken from the run that computed them

    run = orchestrator.get_run(first["run_id"], home=orch.home)
    assert [(p["position"], p["value"]) for p in run.series["loss"]] == [
        (0, 1.0), (1, pytest.approx(1 / 1.5)), (2, 0.5), (3, pytest.approx(1 / 2.5)),
    ]  # fmt: skip
    assert run.params["optimizer"] == "sgd" and run.params["layers"] == [8, 4]
    assert run.params["lr"] == 0.5  # the pipeline's own parameter
    logged = {a["name"]: a for a in run.logged_artifacts}
    assert set(logged) == {"weights", "notes"} and logged["weights"]["step"] == "fit"
    assert all(len(orch.artifact_files(a["hash"])) == 1 for a in logged.values())
    assert run.artifact("notes") == b"trained on a sunny day\n"  # a file: its bytes
    assert run.artifact("weights") == {"weights": [0.5, 1.0]}
    with pytest.raises(
        orchestrator.NotFound, match=r"logged no artifact 'weight' \(did you mean 'weights'\?\)"
    ):
        run.artifact("weight")

    # logged artifacts are kept by `cache gc` like outputs are
    gc = orch("cache", "gc", "--grace", "0")
    assert gc.code == 0, gc.describe()
    assert all(orch.artifact_files(a["hash"]) for a in logged.values())


def test_a_bad_metric_fails_its_step_with_one_line_naming_it(orch: Orch, project: Project) -> None:
    project.write("bad.py", BAD_METRIC)
    doc = orch.run("bad.py:bad", code=1)
    error = doc["steps"][0]["error"]
    assert error.splitlines()[0] == "step 'noisy': metric 'r2' must be a number, got str"


def assert_ranked_with_cache_hits_and_logged_params(
    orch: Orch, project: Project, five: dict[str, str]
) -> None:
    """A run that took every step from the cache sorts and filters by the metrics and
    logged parameters of the run that computed them; text and `!=` filters, a limit
    smaller than the matches, and an unknown filter name (one error line)."""
    again = orch.run("exp.py:exp", "-p", "C=1")
    assert {s["state"] for s in again["steps"]} == {"cached"}
    rid = again["run_id"]
    assert [r["run_id"] for r in _runs(orch, "--filter", "C=1")] == [rid, five["1"]]

    rows = _runs(orch, "--sort", "-log_loss")
    assert len(rows) == 6
    losses = [r["metrics"]["log_loss"] for r in rows]
    assert losses == sorted(losses, reverse=True)
    ids = [r["run_id"] for r in rows]
    assert ids.index(rid) + 1 == ids.index(five["1"])  # equal values: the newer run first
    mine = rows[ids.index(rid)]["metrics"]["log_loss"]
    assert [r["run_id"] for r in _runs(orch, "--filter", f"log_loss={mine!r}")] == [
        rid,
        five["1"],
    ]
    assert len(_runs(orch, "--filter", f"metrics.log_loss!={mine!r}")) == 4

    assert len(_runs(orch, "--filter", "tag=baseline", "--sort", "accuracy")) == 6
    assert _runs(orch, "--filter", "params.tag!=baseline") == []
    assert _runs(orch, "--filter", "solver=saga") == []
    top = _runs(orch, "--filter", "C>=0.01", "--sort", "log_loss", "--limit", "2")
    wanted = sorted(
        (r for r in rows if r["params"]["C"] >= 0.01), key=lambda r: losses[ids.index(r["run_id"])]
    )
    assert [r["run_id"] for r in top] == [r["run_id"] for r in wanted[:2]]
    assert top[0]["metrics"]["train_accuracy"] == wanted[0]["metrics"]["train_accuracy"]

    bad = orch("runs", "--pipeline", "exp", "--filter", "nope=1")
    assert bad.code == 2, bad.describe()
    assert bad.err.strip().splitlines() == [
        "error: --filter 'nope': no run here has a metric or parameter of that name "
        "(metrics: accuracy, log_loss, train_accuracy; parameters: C, path, solver, tag)"
    ]


def test_runs_sorted_and_filtered_in_sql_count_cache_hits_and_logged_params(
    orch: Orch, project: Project, five: dict[str, str]
) -> None:
    assert_ranked_with_cache_hits_and_logged_params(orch, project, five)
