"""Conditional steps through the CLI, as a user types it: a deploy gated on a real model's
R² (diabetes, Ridge) is skipped with its reason under the bar and runs over it; its
descendants follow it; the run succeeds; `show`, `explain`, `runs`, `graph`, `resume`
and the UI's step panel say why; a wrong condition is one error before anything runs.
Real SQLite store and artifact folder, thread and process executors."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pytest
from orchtest import Orch, Project, states, step_of

FLOW = """
from pathlib import Path

from sklearn.base import BaseEstimator
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

from orchestrator import pipeline, step, when


def _split():
    X, y = load_diabetes(return_X_y=True)
    return train_test_split(X, y, random_state=0)


@step(kind="train")
def fit(alpha: float = 1.0) -> BaseEstimator:
    X_train, _, y_train, _ = _split()
    return Ridge(alpha=alpha).fit(X_train, y_train)


@step(kind="evaluate")
def evaluate(model: BaseEstimator) -> dict:
    _, X_test, _, y_test = _split()
    return {"r2": round(float(model.score(X_test, y_test)), 4)}


@step(kind="validate")
def passed(metrics: dict, bar: float = 0.3) -> bool:
    return metrics["r2"] >= bar


@step(kind="deploy")
def deploy(model: BaseEstimator, out: str = "deployed.txt") -> str:
    if Path("deploy.fails").exists():
        raise RuntimeError("registry unreachable")
    note = f"deployed Ridge(alpha={model.alpha})"
    Path(out).write_text(note)
    return note


@step
def announce(note: str) -> str:
    return note.upper()


@step
def audit(metrics: dict) -> float:
    if Path("audit.fails").exists():
        raise RuntimeError("audit log full")
    return metrics["r2"]


@pipeline
def release(alpha: float = 1.0, bar: float = 0.3):
    model = fit(alpha=alpha)
    metrics = evaluate(model)
    announce(deploy(model, _when=passed(metrics, bar=bar)))
    audit(metrics)


@pipeline
def release_if(alpha: float = 1.0, bar: float = 0.3):
    model = fit(alpha=alpha)
    metrics = evaluate(model)
    deploy.when(when(metrics, lambda m: m["r2"] >= bar, label="r2 >= bar"))(model)
"""

SKIPPED = "condition 'passed' is false"
DOWNSTREAM = "upstream step 'deploy' was skipped by its condition"


@pytest.fixture
def flow(project: Project) -> Project:
    project.write("flow.py", FLOW)
    return project


def reason(doc: dict[str, Any], name: str) -> Any:
    why = step_of(doc, name)["reason"]
    return why.get("summary") if isinstance(why, dict) else why


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_deploy_is_skipped_under_the_bar_and_runs_over_it(
    orch: Orch, flow: Project, executor: str
) -> None:
    low = orch.run("flow.py:release", "-e", executor, "--param", "alpha=10")
    assert low["status"] == "succeeded"
    assert states(low) == {
        "fit": "succeeded",
        "evaluate": "succeeded",
        "passed": "succeeded",
        "audit": "succeeded",
        "deploy": "skipped",
        "announce": "skipped",
    }
    assert reason(low, "deploy") == SKIPPED
    assert reason(low, "announce") == DOWNSTREAM
    assert not flow.path("deployed.txt").exists()
    shown = orch.show(low["run_id"])
    assert shown["status"] == "succeeded"
    assert step_of(shown, "deploy")["reason"]["summary"] == SKIPPED
    assert step_of(shown, "deploy")["error"] is None
    assert orch.runs()[0]["status"] == "succeeded"

    high = orch.run("flow.py:release", "-e", executor, "--param", "alpha=0.1")
    assert states(high) == {
        "fit": "succeeded",
        "evaluate": "succeeded",
        "passed": "succeeded",
        "audit": "succeeded",
        "deploy": "succeeded",
        "announce": "succeeded",
    }
    assert flow.path("deployed.txt").read_text() == "deployed Ridge(alpha=0.1)"

    again = orch.run("flow.py:release", "-e", executor, "--param", "alpha=10")
    assert states(again)["passed"] == "cached"  # decided again from the cached value
    assert states(again)["deploy"] == "skipped" and reason(again, "deploy") == SKIPPED


def test_show_explain_and_runs_say_why_a_step_was_skipped(orch: Orch, flow: Project) -> None:
    run_id = orch.run("flow.py:release", "--param", "alpha=10")["run_id"]
    shown = orch("show", run_id)
    assert shown.code == 0, shown.describe()
    assert f"why: {SKIPPED}" in shown.out
    assert f"why: {DOWNSTREAM}" in shown.out
    assert "error:" not in shown.out
    assert orch.explain(run_id, "deploy").splitlines() == [
        f"step 'deploy' of run {run_id} was skipped.",
        f"  - {SKIPPED}",
    ]
    assert orch.explain(run_id, "announce").splitlines()[1] == f"  - {DOWNSTREAM}"
    listed = orch("runs")
    assert listed.code == 0, listed.describe()
    line = next(x for x in listed.out.splitlines() if run_id in x)
    assert "succeeded" in line and "2 skipped" in line


def test_a_predicate_on_a_metric_reads_the_value_and_enters_the_key(
    orch: Orch, flow: Project
) -> None:
    low = orch.run("flow.py:release_if", "-e", "process", "--param", "bar=0.9")
    assert low["status"] == "succeeded" and states(low)["deploy"] == "skipped"
    assert reason(low, "deploy") == "condition 'r2 >= bar' on 'evaluate' is false"
    assert orch.explain(low["run_id"], "deploy").splitlines()[1:] == [
        "  - condition 'r2 >= bar' on 'evaluate' is false",
        "  - value of 'evaluate': {'r2': 0.357}",
    ]
    high = orch.run("flow.py:release_if", "--param", "bar=0.3")
    assert states(high) == {"fit": "cached", "evaluate": "cached", "deploy": "succeeded"}
    same = orch.run("flow.py:release_if", "--param", "bar=0.3")
    assert states(same)["deploy"] == "cached"
    moved = orch.run("flow.py:release_if", "--param", "bar=0.2")
    assert states(moved)["deploy"] == "succeeded"
    assert "code changed: condition " in reason(moved, "deploy")


def test_a_failed_branch_fails_the_run_and_resume_decides_again(orch: Orch, flow: Project) -> None:
    flow.write("audit.fails", "")
    failed = orch.run("flow.py:release", "--param", "alpha=10", code=1)
    assert failed["status"] == "failed"
    assert states(failed)["audit"] == "failed" and states(failed)["deploy"] == "skipped"
    flow.path("audit.fails").unlink()
    res = orch("resume", failed["run_id"], "--json")
    assert res.code == 0, res.describe()
    assert res.json["status"] == "succeeded"
    assert states(res.json) == {
        "fit": "cached",
        "evaluate": "cached",
        "passed": "cached",
        "audit": "succeeded",
        "deploy": "skipped",
        "announce": "skipped",
    }
    assert reason(res.json, "deploy") == SKIPPED


def test_a_condition_that_holds_lets_a_failing_deploy_fail_the_run(
    orch: Orch, flow: Project
) -> None:
    flow.write("deploy.fails", "")
    doc = orch.run("flow.py:release", "--param", "alpha=0.1", code=1)
    assert states(doc)["deploy"] == "failed"
    assert reason(doc, "announce") == "upstream step 'deploy' failed"


WRONG = """
from orchestrator import pipeline, step, when


@step
def evaluate() -> dict:
    return {"r2": 0.5}


@step
def deploy(metrics: dict) -> str:
    return "ok"


@pipeline
def not_bool():
    metrics = evaluate()
    deploy(metrics, _when=metrics)


@pipeline
def not_callable():
    metrics = evaluate()
    deploy(metrics, _when=when(metrics, "r2 > 0.8"))
"""


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        (
            "not_bool",
            "step 'deploy' condition 'evaluate' is typed dict, not bool; declare `-> bool` "
            "or pass a predicate: when(evaluate, lambda value: ...)",
        ),
        (
            "not_callable",
            "step 'deploy' condition on 'evaluate': the predicate must be callable, got "
            "'r2 > 0.8' (str)",
        ),
    ],
)
def test_a_wrong_condition_is_one_error_before_anything_runs(
    orch: Orch, project: Project, target: str, problem: str
) -> None:
    project.write("wrong.py", WRONG)
    res = orch("run", f"wrong.py:{target}")
    assert res.code == 2, res.describe()
    assert res.err.strip().splitlines() == [
        f"error: pipeline '{target}' is invalid (1 problem):",
        f"  - {problem}",
    ]
    assert "Traceback" not in res.err
    assert orch.runs() == []


def test_graph_draws_the_condition(orch: Orch, flow: Project) -> None:
    res = orch("graph", "flow.py:release")
    assert res.code == 0, res.describe()
    line = next(x for x in res.out.splitlines() if x.strip().startswith("deploy "))
    assert line.strip() == "deploy (deploy) -> str   [model <- fit; when 'passed']"
    mermaid = orch("graph", "flow.py:release", "--format", "mermaid").out
    assert "passed --> deploy" in mermaid


def test_the_ui_step_panel_shows_the_reason(orch: Orch, flow: Project, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from orchestrator.artifacts.store import ArtifactStore
    from orchestrator.store.metadata import MetadataStore
    from orchestrator.ui.app import create_app

    run_id = orch.run("flow.py:release", "--param", "alpha=10")["run_id"]
    store = MetadataStore(f"sqlite:///{orch.db}")
    app = create_app(store, ArtifactStore(orch.artifacts), home=orch.home, token=None)
    try:
        with TestClient(app) as client:
            api = client.get(f"/api/runs/{run_id}/steps/deploy")
            assert api.status_code == 200, api.text
            assert api.json()["state"] == "skipped"
            panel = client.get(f"/runs/{run_id}/steps/deploy", headers={"HX-Request": "true"})
            text = html.unescape(panel.text)
            assert f"step 'deploy' of run {run_id} was skipped." in text
            assert SKIPPED in text
            down = client.get(f"/runs/{run_id}/steps/announce", headers={"HX-Request": "true"})
            assert DOWNSTREAM in html.unescape(down.text)
            graph = client.get(f"/api/runs/{run_id}/graph").json()
            assert {"source": "passed", "target": "deploy", "input": "when"} in graph["edges"]
    finally:
        store.close()
