"""The train step: fit any scikit-learn estimator, named by dotted path, behind a preprocessor.

`train_model` imports the estimator class, checks its parameters by name before
fitting, seeds it (`random_state=seed` unless the params set it) and fits
`Pipeline([("features", preprocessor), ("model", estimator)])` on the training frame.
The preprocessor is cloned and refit on the same training rows, so the input artifact
is never mutated and the result is the same as fitting it once.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any

from orchestrator import OrchestratorError, step

from ._runtime import log_info
from ._types import BaseEstimator, ColumnTransformer, DataFrame, SklearnPipeline
from .feature import require_target


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def import_estimator(path: str) -> type[BaseEstimator]:
    """The estimator class at dotted `path`, e.g. `sklearn.ensemble.RandomForestClassifier`."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise OrchestratorError(
            f"train: estimator '{path}' must be a dotted path such as "
            "'sklearn.linear_model.LogisticRegression'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise OrchestratorError(
            f"train: cannot import estimator '{path}': module '{module_name}' not found ({exc})"
        ) from None
    from sklearn.base import BaseEstimator

    cls = getattr(module, class_name, None)
    if cls is None:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise OrchestratorError(
            f"train: cannot import estimator '{path}': module '{module_name}' has no "
            f"'{class_name}'{_suggest(class_name, names)}"
        )
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise OrchestratorError(
            f"train: '{path}' is not a scikit-learn estimator (expected a BaseEstimator "
            f"subclass, got {type(cls).__name__} {cls!r})"
        )
    return cls


def make_estimator(path: str, params: dict[str, Any], seed: int) -> BaseEstimator:
    """Instantiate the estimator at `path` with `params`, seeded when it takes a random_state."""
    cls = import_estimator(path)
    signature = inspect.signature(cls).parameters.values()
    valid = sorted(p.name for p in signature if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    unknown = sorted(set(params) - set(valid))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in signature):
        hints = "".join(_suggest(u, valid) for u in unknown[:1])
        raise OrchestratorError(
            f"train: {cls.__name__} has no parameter {', '.join(map(repr, unknown))}{hints}; "
            f"its parameters: {', '.join(valid)}"
        )
    if "random_state" in valid and "random_state" not in params:
        params = {**params, "random_state": seed}
    return cls(**params)


@step(name="train", kind="train")
def train_model(
    train: DataFrame,
    preprocessor: ColumnTransformer,
    estimator: str = "sklearn.linear_model.LogisticRegression",
    params: dict[str, Any] | None = None,
    target: str = "target",
    seed: int = 0,
) -> SklearnPipeline:
    """Fit `preprocessor` + `estimator` (dotted path, with `params`) on `train`."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    require_target(train, target, "train")
    model = make_estimator(estimator, dict(params or {}), seed)
    pipe = Pipeline([("features", clone(preprocessor)), ("model", model)])
    x, y = train.drop(columns=[target]), train[target]
    try:
        pipe.fit(x, y)
    except (ValueError, TypeError) as exc:
        if type(exc).__name__ == "InvalidParameterError":
            raise OrchestratorError(f"train: invalid parameter for {estimator}: {exc}") from None
        raise OrchestratorError(
            f"train: fitting {estimator} on {len(train)} rows failed: {exc}"
        ) from exc
    log_info("trained model", estimator=estimator, rows=len(train))
    return pipe
