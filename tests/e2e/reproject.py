"""The iris project that the reproduce tests register, rebuild and verify.

`write_project(project)` writes `helpers.py`, `flow.py` (pipeline `iris`: load a
`FileInput` -> features, which calls `helpers.scale` and with `jitter=true` adds
`os.urandom` noise -> fit -> score -> deploy as model `iris`) and the real iris dataset
shipped with scikit-learn as `iris.csv`. `LINEAGE`: the steps the model artifact comes from.
"""

from __future__ import annotations

from orchtest import Project

HELPERS = """
import pandas as pd


def scale(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    cols = [c for c in out.columns if c != "target"]
    out[cols] = out[cols] * 10.0
    return out
"""

FLOW = """
import os

import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

import helpers
from orchestrator import FileInput, pipeline, step
from orchestrator.steps.deploy import deploy_model


@step(kind="ingest")
def load(path: FileInput) -> pd.DataFrame:
    return pd.read_csv(path)


@step(kind="feature")
def features(df: pd.DataFrame, jitter: bool = False) -> pd.DataFrame:
    out = helpers.scale(df)
    if jitter:
        out["noise"] = [b / 255 for b in os.urandom(len(out))]
    return out


@step(kind="train")
def fit(df: pd.DataFrame, C: float = 1.0) -> BaseEstimator:
    X, y = df.drop(columns="target"), df["target"]
    return LogisticRegression(C=C, max_iter=500).fit(X, y)


@step(kind="evaluate")
def score(model: BaseEstimator, df: pd.DataFrame) -> dict[str, float]:
    return {"accuracy": float(model.score(df.drop(columns="target"), df["target"]))}


@pipeline
def iris(path: str = "iris.csv", C: float = 1.0, jitter: bool = False):
    df = features(load(path=path), jitter=jitter)
    model = fit(df, C=C)
    deploy_model(model, score(model, df), data=df, model_name="iris")
"""

LINEAGE = ["load", "features", "fit"]


def write_project(project: Project) -> None:
    """The iris project: helpers.py, flow.py and the real iris data as iris.csv."""
    from sklearn.datasets import load_iris

    project.write("helpers.py", HELPERS)
    project.write("flow.py", FLOW)
    load_iris(as_frame=True).frame.to_csv(project.path("iris.csv"), index=False)
