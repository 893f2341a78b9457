"""The deploy step: register the trained model and promote it only if it beats production.

`deploy_model` needs a run context (it writes to the model registry). It takes any fitted
scikit-learn estimator fitted on a DataFrame (its column names become the serving input
schema: a model fitted on a bare numpy array is refused before anything is registered)
and either an `EvalReport` or a plain metrics mapping such as `{"r2": 0.41, "rmse": 53.2}`.
It registers the model as a new version with its lineage (run, step, parameters, input
data hash when `data` is given), then compares one metric with the production champion's:
promoted when there is no champion or when it wins by more than `margin`; otherwise the
champion stays and the decision's `reason` says why.

Which metric, and against what (`Scorecard`):

* an `EvalReport` compares its primary metric (or `metric`), against the champion's
  score on the same test rows when evaluate measured it, else the champion's registered
  metrics;
* a mapping compares `metric`, or its only key, or `accuracy`, or `r2`, against the
  champion's registered metrics (a mapping carries no champion measurement). The
  direction is `higher_is_better`, or known from the name: scikit-learn's scorer names
  (`accuracy`, `f1_macro`, `r2`, `neg_...`) are higher-is-better, losses (`rmse`, `mse`,
  `mae`, `mean_squared_error`, `log_loss`...) lower-is-better.

The step caches like any other: an unchanged model and report make the same decision
again, so a re-run registers nothing new; any change upstream (a new model, new metrics)
runs it again against the registry as it is then.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from orchestrator import ModelVersion, OrchestratorError, RunContext, current, step

from ._types import BaseEstimator, DataFrame
from .evaluate import EvalReport

LOSSES = frozenset({"rmse", "mse", "mae", "mape", "medae", "loss", "error"})
DEFAULT_METRICS = ("accuracy", "r2")


class DeployDecision(BaseModel):
    """What the deploy step did with the model version it registered."""

    model_name: str
    version: int
    promoted: bool
    stage: str
    reason: str
    champion_version: int | None = None


class Scorecard(BaseModel):
    """What the champion/challenger gate compares: one metric, its direction, the evidence."""

    metrics: dict[str, float]
    metric: str
    higher_is_better: bool
    champion_version: int | None = None
    champion_metrics: dict[str, float] | None = None

    @property
    def score(self) -> float:
        return self.metrics[self.metric]


def _context() -> RunContext:
    try:
        return current()
    except OrchestratorError:
        raise OrchestratorError("deploy_model needs a run context (run it in a pipeline)") from None


def metric_direction(name: str) -> bool | None:
    """True when a higher `name` is better, False when lower is, None when unknown."""
    from sklearn.metrics import get_scorer_names

    scorers = set(get_scorer_names())
    if name in scorers:
        return True
    if f"neg_{name}" in scorers or name in LOSSES or name.endswith(("_error", "_loss")):
        return False
    return None


def _plain_metrics(metrics: Mapping[Any, Any]) -> dict[str, float]:
    if not metrics:
        raise OrchestratorError(
            "deploy: the metrics mapping is empty; give at least the metric to compare"
        )
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise OrchestratorError(
                f"deploy: metric '{key}' is {value!r} ({type(value).__name__}), not a number"
            )
        out[str(key)] = float(value)
    return out


def _pick_metric(metrics: dict[str, float], metric: str | None) -> str:
    if metric is not None:
        if metric not in metrics:
            raise OrchestratorError(
                f"deploy: metric '{metric}' is not in the report; it has: "
                f"{', '.join(sorted(metrics))}"
            )
        return metric
    if len(metrics) == 1:
        return next(iter(metrics))
    for name in DEFAULT_METRICS:
        if name in metrics:
            return name
    raise OrchestratorError(
        f"deploy: which metric should decide promotion? the report has "
        f"{', '.join(sorted(metrics))}; pass metric=NAME"
    )


def scorecard(
    report: EvalReport | Mapping[str, float],
    metric: str | None = None,
    higher_is_better: bool | None = None,
) -> Scorecard:
    """The gate's view of `report`; see the module docstring for the rules."""
    if isinstance(report, EvalReport):
        metrics, champion = dict(report.metrics), report.champion_metrics
        name = _pick_metric(metrics, metric or report.primary_metric)
        if higher_is_better is None and name == report.primary_metric:
            higher_is_better = report.higher_is_better
        version = report.champion_version
    elif isinstance(report, Mapping):
        metrics, champion, version = _plain_metrics(report), None, None
        name = _pick_metric(metrics, metric)
    else:
        raise OrchestratorError(
            "deploy: report must be an EvalReport or a mapping of metric name to number, "
            f"got {type(report).__name__}"
        )
    direction = metric_direction(name) if higher_is_better is None else higher_is_better
    if direction is None:
        raise OrchestratorError(
            f"deploy: cannot tell whether a higher '{name}' is better; "
            "pass higher_is_better=true or higher_is_better=false"
        )
    return Scorecard(
        metrics=metrics,
        metric=name,
        higher_is_better=direction,
        champion_version=version,
        champion_metrics=champion,
    )


def _champion_score(card: Scorecard, champion: ModelVersion) -> float | None:
    """The champion's metric, measured on this test set when evaluate did so."""
    metrics = champion.metrics
    if card.champion_version == champion.version and card.champion_metrics is not None:
        metrics = card.champion_metrics
    value = metrics.get(card.metric)
    return None if value is None else float(value)


def decide(
    report: EvalReport | Scorecard, champion: ModelVersion | None, margin: float
) -> tuple[bool, str]:
    """(promote?, reason) for a challenger with `report` against `champion`."""
    card = report if isinstance(report, Scorecard) else scorecard(report)
    name, ours = card.metric, card.score
    if not math.isfinite(ours):
        return False, f"not promoted: its {name} is {ours}, not a finite number"
    if champion is None:
        return True, "no production model yet"
    theirs = _champion_score(card, champion)
    if theirs is None:
        return True, f"champion v{champion.version} has no {name} metric to compare with"
    gain = ours - theirs if card.higher_is_better else theirs - ours
    if gain > margin:
        return True, (
            f"{name} {ours:.4f} beats champion v{champion.version}'s {theirs:.4f} "
            f"by more than margin {margin}"
        )
    return False, (
        f"kept champion v{champion.version}: {name} {ours:.4f} does not beat "
        f"{theirs:.4f} by margin {margin}"
    )


def require_servable(model: Any) -> list[str]:
    """The training column names of a fitted `model`, or one error saying what is wrong."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    name = type(model).__name__
    if not callable(getattr(model, "predict", None)):
        raise OrchestratorError(
            f"deploy: expected a fitted scikit-learn estimator with predict(), got {name}"
        )
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise OrchestratorError(f"deploy: {name} is not fitted; fit it before deploying") from None
    except TypeError:  # not a scikit-learn estimator: serving will say what it lacks
        pass
    steps = getattr(model, "steps", None)
    for est in (model, steps[0][1] if steps else None):
        names = getattr(est, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
    raise OrchestratorError(
        f"deploy: {name} was fitted on an array without column names (no feature_names_in_), "
        "so its serving input schema is unknown; fit it on a pandas DataFrame"
    )


def _already_production(model_name: str, champion: ModelVersion) -> DeployDecision:
    return DeployDecision(
        model_name=model_name,
        version=champion.version,
        promoted=False,
        stage=champion.stage,
        reason=f"this model is already production v{champion.version}",
        champion_version=champion.version,
    )


@step(name="deploy", kind="deploy", hints={"store": True})
def deploy_model(
    model: BaseEstimator,
    report: EvalReport | Mapping[str, float],
    data: DataFrame | None = None,
    model_name: str = "model",
    margin: float = 0.0,
    metric: str | None = None,
    higher_is_better: bool | None = None,
) -> DeployDecision:
    """Register `model` as a new version of `model_name`; promote it if it beats production."""
    ctx = _context()
    if margin < 0:
        raise OrchestratorError(f"deploy: margin must be >= 0, got {margin}")
    require_servable(model)
    card = scorecard(report, metric, higher_is_better)
    artifact_hash = ctx.input_hashes.get("model")
    if artifact_hash is None:
        raise OrchestratorError(f"deploy: step '{ctx.step}' has no content hash for input 'model'")
    registry = ctx.registry
    champion = registry.production(model_name)
    if champion is not None and champion.artifact_hash == artifact_hash:
        decision = _already_production(model_name, champion)
        ctx.log.info("deploy decision", model=model_name, promoted=False, reason=decision.reason)
        return decision
    promote, reason = decide(card, champion, margin)
    version = registry.register(
        model_name,
        artifact_hash=artifact_hash,
        metrics=card.metrics,
        run_id=ctx.run_id,
        step=ctx.step,
        params=dict(ctx.params),
        data_hash=ctx.input_hashes.get("data"),
        reason=reason,
    )
    if promote:
        version = registry.promote(
            model_name, version.version, reason, actor="deploy", run_id=ctx.run_id, step=ctx.step
        )
    ctx.log.info(
        "deploy decision",
        model=model_name,
        version=version.version,
        promoted=promote,
        reason=reason,
        metric=card.metric,
    )
    return DeployDecision(
        model_name=model_name,
        version=version.version,
        promoted=promote,
        stage=version.stage,
        reason=reason,
        champion_version=None if champion is None else champion.version,
    )
