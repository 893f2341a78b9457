"""`evaluate_model` and `deploy_model` on any scikit-learn estimator and on plain metrics dicts.

Real scikit-learn datasets and estimators; deploy writes to the real SQL model registry
over a SQLite file, with the model's real content hash from a real artifact store.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from orchestrator import OrchestratorError, RunContext
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.execution.context import activate, deactivate
from orchestrator.steps import EvalReport, deploy_model, evaluate_model, load_sklearn_dataset
from orchestrator.steps.deploy import decide, metric_direction, scorecard
from orchestrator.store.metadata import MetadataStore
from orchestrator.store.registry import StoreRegistry

# -- fixtures -------------------------------------------------------------------------


class Log:
    """The step logger's interface, keeping (level, event, fields)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.records.append(("info", event, kw))

    def warning(self, event: str, **kw: Any) -> None:
        self.records.append(("warning", event, kw))

    error = warning
    debug = info


def split(name: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = train_test_split(load_sklearn_dataset(name), test_size=0.25, random_state=seed)
    return train, test


def fit(estimator: BaseEstimator, train: pd.DataFrame, drop: tuple[str, ...] = ()) -> Any:
    return estimator.fit(train.drop(columns=["target", *drop]), train["target"])


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split("diabetes")


@pytest.fixture(scope="module")
def linear(diabetes: tuple[pd.DataFrame, pd.DataFrame]) -> LinearRegression:
    return fit(LinearRegression(), diabetes[0])


class Deployer:
    """Runs `deploy_model` inside a run context over a real registry and artifact store."""

    def __init__(self, root: Path) -> None:
        self.store = MetadataStore(f"sqlite:///{root / 'orchestrator.db'}")
        self.artifacts = ArtifactStore(root / "artifacts")
        self.registry = StoreRegistry(self.store, self.artifacts)
        self.runs = 0

    def __call__(self, model: Any, report: Any, **params: Any) -> Any:
        self.runs += 1
        ctx = RunContext(
            run_id=f"run-{self.runs}",
            step="deploy",
            pipeline="test",
            params=params,
            input_hashes={"model": self.artifacts.put(model).hash},
            log=Log(),
            registry_factory=lambda: self.registry,
        )
        token = activate(ctx)
        try:
            return deploy_model(model, report, **params)
        finally:
            deactivate(token)


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Deployer]:
    deployer = Deployer(tmp_path)
    yield deployer
    deployer.store.close()


# -- evaluate -------------------------------------------------------------------------


def test_evaluate_a_plain_regressor_infers_the_task(
    diabetes: tuple[pd.DataFrame, pd.DataFrame], linear: LinearRegression
) -> None:
    test = diabetes[1]
    report = evaluate_model(linear, test)
    pred = linear.predict(test.drop(columns="target"))
    assert report.task == "regression" and report.primary_metric == "r2"
    assert report.metrics["r2"] == pytest.approx(skm.r2_score(test["target"], pred))
    assert report.metrics["rmse"] == pytest.approx(
        math.sqrt(skm.mean_squared_error(test["target"], pred))
    )
    assert report.rows == len(test)


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForestClassifier(n_estimators=20, random_state=0),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    ],
    ids=["random-forest", "sklearn-pipeline"],
)
def test_evaluate_a_classifier_or_an_sklearn_pipeline(estimator: BaseEstimator) -> None:
    train, test = split("wine")
    model = fit(estimator, train)
    report = evaluate_model(model, test)
    pred = model.predict(test.drop(columns="target"))
    assert report.task == "classification" and report.primary_metric == "accuracy"
    assert report.metrics["accuracy"] == pytest.approx(skm.accuracy_score(test["target"], pred))
    assert report.metrics["accuracy"] > 0.8


class Median:
    """A model with `predict` that is no scikit-learn estimator."""

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.full(len(x), 140.0)


def test_evaluate_errors_name_the_model(
    diabetes: tuple[pd.DataFrame, pd.DataFrame], linear: LinearRegression
) -> None:
    train, test = diabetes
    with pytest.raises(OrchestratorError) as err:
        evaluate_model(Median(), test)
    assert str(err.value) == (
        "evaluate: cannot tell whether Median is a classifier or a regressor; "
        "pass task=classification or task=regression"
    )
    assert evaluate_model(Median(), test, task="regression").metrics["mae"] > 0
    with pytest.raises(OrchestratorError, match="^evaluate: unknown task 'clustering'; use one"):
        evaluate_model(linear, test, task="clustering")
    narrow = fit(LinearRegression(), train, drop=("bmi",))
    with pytest.raises(OrchestratorError) as err:
        evaluate_model(narrow, test)
    assert str(err.value).startswith(
        f"evaluate: LinearRegression cannot be scored on the {len(test)} test rows "
        "(columns: age, sex, bmi, "
    )
    assert "ValueError: The feature names should match" in str(err.value)
    with pytest.raises(OrchestratorError, match="expected a fitted scikit-learn estimator"):
        evaluate_model(object(), test, task="regression")  # type: ignore[arg-type]


# -- the gate on plain dicts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("metrics", "kwargs", "metric", "higher"),
    [
        ({"r2": 0.4, "rmse": 50.0}, {}, "r2", True),
        ({"accuracy": 0.9, "f1_macro": 0.8}, {}, "accuracy", True),
        ({"rmse": 50.0}, {}, "rmse", False),
        ({"r2": 0.4, "rmse": 50.0}, {"metric": "rmse"}, "rmse", False),
        (
            {"mean_absolute_error": 3.0, "r2": 0.1},
            {"metric": "mean_absolute_error"},
            "mean_absolute_error",
            False,
        ),
        ({"neg_log_loss": -0.3}, {}, "neg_log_loss", True),
        ({"score": 7.0}, {"higher_is_better": False}, "score", False),
        ({"r2": np.float32(0.5), "mae": np.int64(3)}, {}, "r2", True),
    ],
)
def test_scorecard_of_a_dict_picks_the_metric_and_its_direction(
    metrics: dict[str, float], kwargs: dict[str, Any], metric: str, higher: bool
) -> None:
    card = scorecard(metrics, **kwargs)
    assert (card.metric, card.higher_is_better) == (metric, higher)
    assert card.metrics == metrics and card.champion_metrics is None
    assert all(type(v) is float for v in card.metrics.values())


def test_scorecard_of_an_eval_report_is_unchanged() -> None:
    report = EvalReport(
        task="regression",
        metrics={"r2": 0.5, "rmse": 40.0, "mae": 30.0},
        primary_metric="r2",
        higher_is_better=True,
        champion_version=3,
        champion_metrics={"r2": 0.45, "rmse": 42.0, "mae": 31.0},
        rows=100,
    )
    card = scorecard(report)
    assert (card.metric, card.score, card.higher_is_better) == ("r2", 0.5, True)
    assert (card.champion_version, card.champion_metrics) == (3, report.champion_metrics)
    by_rmse = scorecard(report, metric="rmse")
    assert (by_rmse.metric, by_rmse.higher_is_better) == ("rmse", False)


@pytest.mark.parametrize(
    ("metrics", "kwargs", "message"),
    [
        ({}, {}, "deploy: the metrics mapping is empty; give at least the metric to compare"),
        (
            {"f1": 0.8, "recall": 0.7},
            {},
            "deploy: which metric should decide promotion? the report has f1, recall; "
            "pass metric=NAME",
        ),
        ({"r2": 0.4}, {"metric": "auc"}, "deploy: metric 'auc' is not in the report; it has: r2"),
        (
            {"score": 7.0},
            {},
            "deploy: cannot tell whether a higher 'score' is better; "
            "pass higher_is_better=true or higher_is_better=false",
        ),
        ({"r2": "high"}, {}, "deploy: metric 'r2' is 'high' (str), not a number"),
        ({"r2": True}, {}, "deploy: metric 'r2' is True (bool), not a number"),
    ],
)
def test_scorecard_errors_are_one_clear_line(
    metrics: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(OrchestratorError) as err:
        scorecard(metrics, **kwargs)
    assert str(err.value) == message


def test_metric_direction_follows_scikit_learn_names() -> None:
    assert metric_direction("balanced_accuracy") is True
    assert metric_direction("neg_root_mean_squared_error") is True
    assert metric_direction("root_mean_squared_error") is False
    assert metric_direction("mape") is False and metric_direction("hinge_loss") is False
    assert metric_direction("throughput") is None


def test_a_nan_metric_is_never_promoted() -> None:
    promote, reason = decide(scorecard({"r2": float("nan")}), None, 0.0)
    assert not promote and reason == "not promoted: its r2 is nan, not a finite number"


# -- deploy ---------------------------------------------------------------------------


def test_deploy_a_plain_estimator_with_a_metrics_dict(
    deploy: Deployer, linear: LinearRegression, diabetes: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    first = deploy(linear, {"r2": 0.45, "rmse": 53.0}, model_name="lr")
    assert (first.version, first.promoted, first.stage) == (1, True, "production")
    v1 = deploy.registry.get("lr", 1)
    assert v1.metrics == {"r2": 0.45, "rmse": 53.0} and v1.data_hash is None
    assert v1.artifact_hash == deploy.artifacts.put(linear).hash

    narrow = fit(LinearRegression(), diabetes[0], drop=("bmi",))
    kept = deploy(narrow, {"r2": 0.30, "rmse": 60.0}, model_name="lr")
    assert (kept.version, kept.promoted, kept.champion_version) == (2, False, 1)
    assert kept.reason == "kept champion v1: r2 0.3000 does not beat 0.4500 by margin 0.0"

    by_rmse = deploy(
        fit(LinearRegression(), diabetes[0], drop=("s5",)),
        {"r2": 0.30, "rmse": 50.0},
        model_name="lr",
        metric="rmse",
    )
    assert by_rmse.promoted and by_rmse.version == 3
    assert by_rmse.reason == "rmse 50.0000 beats champion v1's 53.0000 by more than margin 0.0"
    stages = [(v.version, v.stage) for v in deploy.registry.versions("lr")]
    assert stages == [(1, "archived"), (2, "candidate"), (3, "production")]


def test_deploy_a_random_forest_with_its_eval_report(deploy: Deployer) -> None:
    train, test = split("breast_cancer")
    model = fit(RandomForestClassifier(n_estimators=20, random_state=0), train)
    report = evaluate_model(model, test)
    decision = deploy(model, report, model_name="rf", margin=0.01)
    assert decision.promoted and decision.stage == "production"
    assert deploy.registry.get("rf", 1).metrics == report.metrics
    again = deploy(model, report, model_name="rf")
    assert again.reason == "this model is already production v1"


def test_deploy_refuses_a_model_it_could_not_serve(
    deploy: Deployer, diabetes: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, _ = diabetes
    on_array = LinearRegression().fit(
        train.drop(columns="target").to_numpy(), train["target"].to_numpy()
    )
    with pytest.raises(OrchestratorError) as err:
        deploy(on_array, {"r2": 0.4}, model_name="lr")
    assert str(err.value) == (
        "deploy: LinearRegression was fitted on an array without column names "
        "(no feature_names_in_), so its serving input schema is unknown; "
        "fit it on a pandas DataFrame"
    )
    with pytest.raises(OrchestratorError) as err:
        deploy(LinearRegression(), {"r2": 0.4}, model_name="lr")
    assert str(err.value) == "deploy: LinearRegression is not fitted; fit it before deploying"
    with pytest.raises(OrchestratorError) as err:
        deploy(fit(LinearRegression(), train), [0.4], model_name="lr")
    assert str(err.value) == (
        "deploy: report must be an EvalReport or a mapping of metric name to number, got list"
    )
    assert deploy.registry.versions("lr") == []  # nothing was registered
