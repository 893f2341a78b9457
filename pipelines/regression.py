"""The built-in regression pipeline: ingest, validate, features, train, evaluate, deploy.

Defaults fit a ridge regression on the diabetes dataset and promote it when its r2
beats the production `diabetes-regressor`.
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
def regression(
    dataset: str = "diabetes",
    estimator: str = "sklearn.linear_model.Ridge",
    alpha: float = 1.0,
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.25,
    seed: int = 0,
    margin: float = 0.0,
    model_name: str = "diabetes-regressor",
) -> None:
    """Train, evaluate and (maybe) promote a regressor on a scikit-learn toy dataset."""
    raw = load_sklearn_dataset(dataset=dataset)
    data, _checks = validate_frame(
        raw,
        columns={"target": "number"},
        not_null=["target"],
        max_null_fraction=0.0,
        min_rows=50,
    )
    train_df, test_df, pre = split_features(data, test_size=test_size, seed=seed)
    model = train_model(train_df, pre, estimator=estimator, params={"alpha": alpha}, seed=seed)
    report = evaluate_model(model, test_df, task="regression", model_name=model_name)
    deploy_model(model, report, data, model_name=model_name, margin=margin)
