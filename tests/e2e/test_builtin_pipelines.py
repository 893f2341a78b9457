"""The built-in pipelines, run by name as a user would (`orch run classification`); `orch graph`."""

from __future__ import annotations

import subprocess
import sys

from orchtest import Orch, Project, states, step_of

STEPS = ["ingest", "validate", "features", "train", "evaluate", "deploy"]
KINDS = ["ingest", "validate", "feature", "train", "evaluate", "deploy"]


def test_classification_pipeline(orch: Orch, project: Project) -> None:
    first = orch.run("classification")
    assert first["pipeline"] == "classification"
    assert first["status"] == "succeeded"
    assert [s["name"] for s in first["steps"]] == STEPS
    assert [s["kind"] for s in first["steps"]] == KINDS
    assert states(first) == dict.fromkeys(STEPS, "succeeded")

    second = orch.run("classification")
    assert states(second) == dict.fromkeys(STEPS, "cached")

    changed = orch.run("classification", "--param", "C=0.5")
    assert changed["status"] == "succeeded"
    assert states(changed) == {
        "ingest": "cached",
        "validate": "cached",
        "features": "cached",
        "train": "succeeded",
        "evaluate": "succeeded",
        "deploy": "succeeded",
    }
    assert "params" in orch.explain(changed["run_id"], "train")
    assert step_of(changed, "train")["outputs"] != step_of(first, "train")["outputs"]

    res = orch("models", "--json")
    assert res.code == 0, res.describe()
    versions = [m for m in res.json["models"] if m["name"] == "iris-classifier"]
    assert versions, res.json
    production = [m for m in versions if m["stage"] == "production"]
    assert len(production) == 1, versions
    v1 = min(versions, key=lambda m: m["version"])
    assert v1["run_id"] == first["run_id"]
    assert v1["artifact_hash"] == step_of(first, "train")["outputs"][0]["hash"]
    assert 0.0 <= v1["metrics"]["accuracy"] <= 1.0
    # the unchanged second run registered nothing new
    assert all(m["run_id"] != second["run_id"] for m in versions)

    dot = orch("graph", "classification", "-f", "dot")
    assert dot.code == 0, dot.describe()
    assert dot.out.lstrip().startswith("digraph")
    assert '"ingest" -> "validate"' in dot.out and '"train" -> "evaluate"' in dot.out

    # `python -m orchestrator` is the same program as `orch`
    listing = subprocess.run(
        [sys.executable, "-m", "orchestrator", "runs"],
        cwd=project.root,
        env=orch.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    for run in (first, second, changed):
        assert run["run_id"] in listing.stdout
    assert "classification" in listing.stdout


def test_regression_pipeline(orch: Orch, project: Project) -> None:
    run = orch.run("regression")
    assert run["pipeline"] == "regression"
    assert [s["name"] for s in run["steps"]] == STEPS
    assert [s["kind"] for s in run["steps"]] == KINDS
    assert states(run) == dict.fromkeys(STEPS, "succeeded")

    res = orch("models", "diabetes-regressor", "--json")
    assert res.code == 0, res.describe()
    [model] = res.json["models"]
    assert model["stage"] == "production"
    assert model["run_id"] == run["run_id"]
    assert {"r2", "rmse", "mae"} <= set(model["metrics"])


def test_graph_formats(orch: Orch, demo_project: Project) -> None:
    text = orch("graph", "pipe.py:demo")
    assert text.code == 0, text.describe()
    assert "pipeline demo: 5 steps" in text.out
    assert "total (evaluate) -> int" in text.out and "a <- double" in text.out

    mermaid = orch("graph", "pipe.py:demo", "--format", "mermaid", "--param", "k=3")
    assert mermaid.code == 0, mermaid.describe()
    assert mermaid.out.startswith("flowchart")
    assert "load --> double" in mermaid.out and "cleaned --> total" in mermaid.out

    bad = orch("graph", "pipe.py:demo", "-f", "png")
    assert bad.code == 2 and "unknown graph format 'png'" in bad.err
    assert not orch.db.exists()  # looking at a graph runs nothing
