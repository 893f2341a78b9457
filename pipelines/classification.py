"""The built-in classification pipeline: ingest, validate, features, train, evaluate, deploy.

Defaults train a logistic regression on iris and promote it when it beats the
production `iris-classifier`. Any scikit-learn classifier works via `estimator`, as
long as it takes the parameters passed (`C`, `max_iter`); override others per step,
e.g. `train.params`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from orchestrator import pipeline
from orchestrator.steps import (
    deploy_model,
    evaluate_model,
    load_sklearn_dataset,
    split_features,
    train_model,
    validate_frame,
)


@pipeline
def classification(
    dataset: str = "iris",
    estimator: str = "sklearn.linear_model.LogisticRegression",
    C: float = 1.0,
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.25,
    seed: int = 0,
    margin: float = 0.0,
    model_name: str = "iris-classifier",
) -> None:
    """Train, evaluate and (maybe) promote a classifier on a scikit-learn toy dataset."""
    raw = load_sklearn_dataset(dataset=dataset)
    data, _checks = validate_frame(
        raw,
        columns={"target": "integer"},
        ranges={"target": (0, None)},
        not_null=["target"],
        max_null_fraction=0.0,
        min_rows=50,
    )
    train_df, test_df, pre = split_features(data, test_size=test_size, seed=seed, stratify=True)
    model = train_model(
        train_df, pre, estimator=estimator, params={"C": C, "max_iter": 1000}, seed=seed
    )
    report = evaluate_model(model, test_df, task="classification", model_name=model_name)
    deploy_model(model, report, data, model_name=model_name, margin=margin)
