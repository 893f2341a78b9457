"""The deploy step: register the trained model and promote it only if it beats production.

`deploy_model` needs a run context (it writes to the model registry). It registers the
model as a new version with its lineage (run, step, parameters, input data hash), then
compares its primary metric with the production champion's: promoted when there is no
champion or when it wins by more than `margin`; otherwise the champion stays and the
decision's `reason` says why. The step caches like any other: an unchanged model and
report make the same decision again, so a re-run registers nothing new; any change
upstream (a new model, new metrics) runs it again against the registry as it is then.
"""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel
from sklearn.pipeline import Pipeline

from orchestrator import ModelVersion, OrchestratorError, RunContext, current, step

from .evaluate import EvalReport


class DeployDecision(BaseModel):
    """What the deploy step did with the model version it registered."""

    model_name: str
    version: int
    promoted: bool
    stage: str
    reason: str
    champion_version: int | None = None


def _context() -> RunContext:
    try:
        return current()
    except OrchestratorError:
        raise OrchestratorError("deploy_model needs a run context (run it in a pipeline)") from None


def _champion_score(report: EvalReport, champion: ModelVersion) -> float | None:
    """The champion's primary metric, measured on this test set when evaluate did so."""
    metrics = champion.metrics
    if report.champion_version == champion.version and report.champion_metrics is not None:
        metrics = report.champion_metrics
    value = metrics.get(report.primary_metric)
    return None if value is None else float(value)


def decide(report: EvalReport, champion: ModelVersion | None, margin: float) -> tuple[bool, str]:
    """(promote?, reason) for a challenger with `report` against `champion`."""
    if champion is None:
        return True, "no production model yet"
    name, ours = report.primary_metric, report.primary_score
    theirs = _champion_score(report, champion)
    if theirs is None:
        return True, f"champion v{champion.version} has no {name} metric to compare with"
    gain = ours - theirs if report.higher_is_better else theirs - ours
    if gain > margin:
        return True, (
            f"{name} {ours:.4f} beats champion v{champion.version}'s {theirs:.4f} "
            f"by more than margin {margin}"
        )
    return False, (
        f"kept champion v{champion.version}: {name} {ours:.4f} does not beat "
        f"{theirs:.4f} by margin {margin}"
    )


@step(name="deploy", kind="deploy", hints={"store": True})
def deploy_model(
    model: Pipeline,
    report: EvalReport,
    data: pd.DataFrame,
    model_name: str = "model",
    margin: float = 0.0,
) -> DeployDecision:
    """Register `model` as a new version of `model_name`; promote it if it beats production."""
    ctx = _context()
    if margin < 0:
        raise OrchestratorError(f"deploy: margin must be >= 0, got {margin}")
    artifact_hash = ctx.input_hashes.get("model")
    if artifact_hash is None:
        raise OrchestratorError(f"deploy: step '{ctx.step}' has no content hash for input 'model'")
    registry = ctx.registry
    champion = registry.production(model_name)
    if champion is not None and champion.artifact_hash == artifact_hash:
        reason = f"this model is already production v{champion.version}"
        ctx.log.info("deploy decision", model=model_name, promoted=False, reason=reason)
        return DeployDecision(
            model_name=model_name,
            version=champion.version,
            promoted=False,
            stage=champion.stage,
            reason=reason,
            champion_version=champion.version,
        )
    promote, reason = decide(report, champion, margin)
    version = registry.register(
        model_name,
        artifact_hash=artifact_hash,
        metrics=report.metrics,
        run_id=ctx.run_id,
        step=ctx.step,
        params=dict(ctx.params),
        data_hash=ctx.input_hashes.get("data"),
        reason=reason,
    )
    if promote:
        version = registry.promote(model_name, version.version, reason)
    ctx.log.info(
        "deploy decision",
        model=model_name,
        version=version.version,
        promoted=promote,
        reason=reason,
    )
    return DeployDecision(
        model_name=model_name,
        version=version.version,
        promoted=promote,
        stage=version.stage,
        reason=reason,
        champion_version=None if champion is None else champion.version,
    )
