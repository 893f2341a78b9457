"""The evaluate step: score a fitted model on the test frame, and the production model too.

`evaluate_model` takes any fitted scikit-learn estimator (a plain `LinearRegression`, a
`RandomForestClassifier`, a `Pipeline`...) and computes the task's metrics
(classification: accuracy, f1, precision, recall, macro-averaged; regression: r2, rmse,
mae) and names the primary one. `task="auto"` asks the estimator whether it is a
classifier or a regressor. Inside a run it also scores the current production model of
the same name on the same rows, so the deploy step compares challenger and champion on
equal terms, and logs the challenger's metrics as the run's metrics (`orch runs
--metric`). A champion that cannot be loaded or cannot predict these rows is reported
with a warning, never fatal; a challenger that cannot predict the test rows is one error
naming the estimator.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from orchestrator import OrchestratorError, RunContext, step

from ._runtime import run_context
from ._types import BaseEstimator, DataFrame, Series
from .feature import require_target

TASKS = {"classification": ("accuracy", True), "regression": ("r2", True)}


class EvalReport(BaseModel):
    """Metrics of one model on a test frame, with the production champion's for comparison."""

    task: str
    metrics: dict[str, float]
    primary_metric: str
    higher_is_better: bool
    champion_version: int | None = None
    champion_metrics: dict[str, float] | None = None
    rows: int

    @property
    def primary_score(self) -> float:
        return self.metrics[self.primary_metric]


def score(model: Any, x: DataFrame, y: Series, task: str) -> dict[str, float]:
    """The task's metrics for `model` predicting `y` from `x`."""
    from sklearn import metrics as skm

    pred = model.predict(x)
    if task == "classification":
        return {
            "accuracy": float(skm.accuracy_score(y, pred)),
            "f1_macro": float(skm.f1_score(y, pred, average="macro", zero_division=0)),
            "precision_macro": float(
                skm.precision_score(y, pred, average="macro", zero_division=0)
            ),
            "recall_macro": float(skm.recall_score(y, pred, average="macro", zero_division=0)),
        }
    return {
        "r2": float(skm.r2_score(y, pred)),
        "rmse": math.sqrt(float(skm.mean_squared_error(y, pred))),
        "mae": float(skm.mean_absolute_error(y, pred)),
    }


def resolve_task(model: Any, task: str) -> str:
    """`task`, or for "auto" the task the estimator declares (classifier or regressor)."""
    if task != "auto" and task not in TASKS:
        raise OrchestratorError(
            f"evaluate: unknown task '{task}'; use one of auto, {', '.join(TASKS)}"
        )
    if task != "auto":
        return task
    from sklearn.base import is_classifier, is_regressor

    try:
        if is_classifier(model):
            return "classification"
        if is_regressor(model):
            return "regression"
    except AttributeError:  # not a scikit-learn estimator: it declares no type
        pass
    raise OrchestratorError(
        f"evaluate: cannot tell whether {type(model).__name__} is a classifier or a "
        "regressor; pass task=classification or task=regression"
    )


def _score_challenger(model: Any, x: DataFrame, y: Series, task: str) -> dict[str, float]:
    """`score`, with an estimator that cannot predict these rows as one clear error."""
    name = type(model).__name__
    if not callable(getattr(model, "predict", None)):
        raise OrchestratorError(
            f"evaluate: expected a fitted scikit-learn estimator with predict(), got {name}"
        )
    try:
        return score(model, x, y, task)
    except (ValueError, TypeError, AttributeError) as exc:
        raise OrchestratorError(
            f"evaluate: {name} cannot be scored on the {len(x)} test rows "
            f"(columns: {', '.join(map(str, x.columns))}): {type(exc).__name__}: {exc}"
        ) from None


def _champion(
    ctx: RunContext, model_name: str, x: DataFrame, y: Series, task: str
) -> tuple[int | None, dict[str, float] | None]:
    """(version, metrics on these rows) of the production model, or Nones."""
    try:
        champion = ctx.registry.production(model_name)
    except OrchestratorError as exc:
        ctx.log.warning("no champion comparison: registry unavailable", error=str(exc))
        return None, None
    if champion is None:
        return None, None
    try:
        metrics = score(ctx.registry.load(champion), x, y, task)
    except Exception as exc:  # an old champion may not fit today's columns: report, go on
        ctx.log.warning(
            "champion could not be evaluated",
            model=model_name,
            version=champion.version,
            error=f"{type(exc).__name__}: {exc}",
        )
        return champion.version, None
    return champion.version, metrics


@step(name="evaluate", kind="evaluate", hints={"store": True})
def evaluate_model(
    model: BaseEstimator,
    test: DataFrame,
    target: str = "target",
    task: str = "auto",
    model_name: str = "model",
) -> EvalReport:
    """Score `model` on `test`; inside a run, score the production `model_name` too."""
    task = resolve_task(model, task)
    require_target(test, target, "evaluate")
    if len(test) < 2:
        raise OrchestratorError(f"evaluate: need at least 2 test rows, got {len(test)}")
    x, y = test.drop(columns=[target]), test[target]
    primary, higher = TASKS[task]
    metrics = _score_challenger(model, x, y, task)
    ctx = run_context()
    champion_version, champion_metrics = (
        _champion(ctx, model_name, x, y, task) if ctx is not None else (None, None)
    )
    if ctx is not None:
        ctx.log_metrics(metrics)
        ctx.log.info(
            "evaluated model",
            model=model_name,
            metric=primary,
            value=metrics[primary],
            champion_version=champion_version,
        )
    return EvalReport(
        task=task,
        metrics=metrics,
        primary_metric=primary,
        higher_is_better=higher,
        champion_version=champion_version,
        champion_metrics=champion_metrics,
        rows=len(test),
    )
