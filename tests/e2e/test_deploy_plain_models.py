"""A user's own train and evaluate steps feeding the built-in `deploy_model`, no adapters.

The user pipeline fits a plain `LinearRegression` on scikit-learn's diabetes data and
scores it into a metrics dict; the built-in deploy step registers it, the champion gate
compares the dicts' `r2`, `orch models --json` shows the versions with their metrics, and
the registered model serves with an input schema taken from its training columns. A
model fitted on a bare numpy array is refused at deploy time with one clear error.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from orchtest import Orch, Project, states, step_of
from sklearn.datasets import load_diabetes

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.serving.server import create_app
from orchestrator.store.metadata import MetadataStore
from orchestrator.store.registry import StoreRegistry

MODEL = "diabetes-linear"
STEPS = ["load", "split", "fit", "score", "deploy"]

PLAIN_PIPELINE = """
import math

import pandas as pd
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

from orchestrator import pipeline, step
from orchestrator.steps import deploy_model


@step(kind="ingest")
def load() -> pd.DataFrame:
    return load_diabetes(as_frame=True).frame


@step(kind="feature")
def split(df: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = train_test_split(df, test_size=0.25, random_state=seed)
    return train, test


@step(kind="train")
def fit(train: pd.DataFrame, drop: list[str] | None = None) -> LinearRegression:
    x = train.drop(columns=["target", *(drop or [])])
    return LinearRegression().fit(x, train["target"])


@step(kind="train")
def fit_array(train: pd.DataFrame) -> LinearRegression:
    x = train.drop(columns=["target"]).to_numpy()
    return LinearRegression().fit(x, train["target"].to_numpy())


@step(kind="evaluate")
def score(model: LinearRegression, test: pd.DataFrame) -> dict[str, float]:
    names = getattr(model, "feature_names_in_", None)  # None: fitted on an array
    x = test.drop(columns="target").to_numpy() if names is None else test[list(names)]
    pred = model.predict(x)
    return {
        "r2": float(r2_score(test["target"], pred)),
        "rmse": math.sqrt(mean_squared_error(test["target"], pred)),
    }


@pipeline
def diabetes(seed: int = 0, margin: float = 0.0):
    df = load()
    train, test = split(df, seed=seed)
    model = fit(train)
    deploy_model(model, score(model, test), df, model_name="diabetes-linear", margin=margin)


@pipeline
def from_array():
    train, test = split(load())
    model = fit_array(train)
    deploy_model(model, score(model, test), model_name="diabetes-array")
"""


def models(orch: Orch, name: str) -> list[dict[str, Any]]:
    res = orch("models", name, "--json")
    assert res.code == 0, res.describe()
    return sorted(res.json["models"], key=lambda m: m["version"])


def json_output(orch: Orch, run: dict[str, Any], step: str) -> Any:
    """A step's output as plain data, loaded through the Python API from the run's store."""
    import orchestrator

    value = orchestrator.load(run["run_id"], step, home=orch.home)
    return value.model_dump() if hasattr(value, "model_dump") else value


@pytest.fixture
def plain_project(project: Project) -> Project:
    project.write("plain.py", PLAIN_PIPELINE)
    return project


def test_plain_estimator_and_metrics_dict_deploy(orch: Orch, plain_project: Project) -> None:
    first = orch.run("plain.py:diabetes")
    assert states(first) == dict.fromkeys(STEPS, "succeeded")
    metrics = json_output(orch, first, "score")
    assert set(metrics) == {"r2", "rmse"} and 0.2 < metrics["r2"] < 0.8
    decision = json_output(orch, first, "deploy")
    assert decision["promoted"] and decision["reason"] == "no production model yet"

    [v1] = models(orch, MODEL)
    assert (v1["version"], v1["stage"], v1["run_id"]) == (1, "production", first["run_id"])
    assert v1["metrics"] == metrics
    assert v1["artifact_hash"] == step_of(first, "fit")["outputs"][0]["hash"]
    assert v1["data_hash"] == step_of(first, "load")["outputs"][0]["hash"]

    again = orch.run("plain.py:diabetes")
    assert states(again) == dict.fromkeys(STEPS, "cached")
    assert len(models(orch, MODEL)) == 1

    # a worse model (two strong features dropped) is registered, the champion stays
    worse = orch.run("plain.py:diabetes", "--param", 'fit.drop=["bmi","s5"]')
    assert states(worse)["fit"] == "succeeded" and states(worse)["deploy"] == "succeeded"
    worse_r2 = json_output(orch, worse, "score")["r2"]
    assert worse_r2 < metrics["r2"]
    v1, v2 = models(orch, MODEL)
    assert (v1["stage"], v2["stage"]) == ("production", "candidate")
    assert v2["reason"] == (
        f"kept champion v1: r2 {worse_r2:.4f} does not beat {metrics['r2']:.4f} by margin 0.0"
    )


def test_a_deployed_plain_estimator_serves_by_its_column_names(
    orch: Orch, plain_project: Project
) -> None:
    orch.run("plain.py:diabetes")
    frame = load_diabetes(as_frame=True).frame
    row = frame.drop(columns=["target"]).iloc[0].to_dict()
    registry = StoreRegistry(MetadataStore(f"sqlite:///{orch.db}"), ArtifactStore(orch.artifacts))
    model = registry.load(registry.get(MODEL, 1))
    expected = float(model.predict(pd.DataFrame([row]))[0])
    with TestClient(create_app(registry, MODEL)) as client:
        meta = client.get("/model").json()
        assert meta["features"] == list(row) and meta["version"] == 1
        res = client.post("/predict", json=row)
        assert res.status_code == 200, res.text
        assert res.json()["prediction"] == pytest.approx(expected)
        missing = client.post("/predict", json={k: v for k, v in row.items() if k != "bmi"})
        assert missing.status_code == 422
        assert [d["field"] for d in missing.json()["detail"]] == ["bmi"]


def test_a_model_fitted_on_an_array_is_refused_at_deploy(
    orch: Orch, plain_project: Project
) -> None:
    run = orch.run("plain.py:from_array", code=1)
    assert states(run) == {
        "load": "succeeded",
        "split": "succeeded",
        "fit_array": "succeeded",
        "score": "succeeded",
        "deploy": "failed",
    }
    assert (
        "deploy: LinearRegression was fitted on an array without column names "
        "(no feature_names_in_), so its serving input schema is unknown; "
        "fit it on a pandas DataFrame"
    ) in step_of(run, "deploy")["error"]
    res = orch("models", "--json")
    assert res.code == 0, res.describe()
    assert [m["name"] for m in res.json["models"]] == []
