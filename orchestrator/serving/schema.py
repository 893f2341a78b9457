"""What serving knows about a fitted model: its input schema and a fast numpy path.

* `build_schemas` makes the pydantic row and batch models from the estimator's training
  columns (`feature_names_in_`): numeric features are strict floats, one-hot encoded ones
  take the type of their categories, unknown keys are refused, and `error_body` renders a
  validation error as `{"detail": [{"field", "error"}]}`.
* `numpy_path` runs `Pipeline([ColumnTransformer, ..., estimator])` on a float array,
  skipping pandas column selection, when it predicts exactly as `model.predict` does.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from orchestrator.errors import ServingError

# -- input schema ----------------------------------------------------------------------


def feature_names(model: Any) -> list[str]:
    """The training columns of a fitted estimator, or of its first step (a Pipeline)."""
    for est in (model, _first_step(model)):
        names = getattr(est, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
    raise ServingError(
        f"cannot serve a {type(model).__name__}: it has no feature_names_in_ (fit it on a "
        "DataFrame with named columns, so its input schema is known)"
    )


def _first_step(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    return steps[0][1] if steps else None


def category_types(model: Any) -> dict[str, Any]:
    """Feature -> Python type for columns encoded from categories (one-hot, ordinal)."""
    out: dict[str, Any] = {}
    for est in (model, _first_step(model)):
        for _name, trans, cols in getattr(est, "transformers_", []):
            cats = getattr(trans, "categories_", None)
            if cats is None or isinstance(cols, str) or not hasattr(cols, "__iter__"):
                continue
            for col, values in zip(cols, cats, strict=False):
                out[str(col)] = _python_type(getattr(values, "dtype", None))
    return out


def _python_type(dtype: Any) -> Any:
    kind = getattr(dtype, "kind", "O")
    return {"b": bool, "i": int, "u": int, "f": float}.get(kind, str)


def build_schemas(name: str, model: Any) -> tuple[type[BaseModel], type[BaseModel], list[str]]:
    """(row schema, batch schema {"rows": [row]}, feature order) for a fitted model."""
    features = feature_names(model)
    types = category_types(model)
    config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, populate_by_name=False)
    fields: dict[str, Any] = {
        f"f{i}": (types.get(col, float), Field(alias=col)) for i, col in enumerate(features)
    }
    row = create_model(f"{_ident(name)}Row", __config__=config, **fields)
    batch = create_model(
        f"{_ident(name)}Batch",
        __config__=ConfigDict(extra="forbid"),
        rows=(list[row], Field(min_length=1)),  # type: ignore[valid-type]
    )
    return row, batch, features


def _ident(name: str) -> str:
    return "".join(c for c in name.title() if c.isalnum()) or "Model"


def error_body(exc: ValidationError) -> bytes:
    detail = [{"field": _loc(e["loc"]), "error": e["msg"]} for e in exc.errors()]
    return json.dumps({"detail": detail}).encode()


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


# -- the numpy path ------------------------------------------------------------------------


def numpy_path(model: Any, features: list[str]) -> Callable[[Any], Any] | None:
    """`Pipeline([ColumnTransformer, ..., estimator])` run on a float array, skipping the
    DataFrame column selection that costs ~2 ms per call; None unless it is such a pipeline
    and it predicts exactly as `model.predict` on a DataFrame does for random probe rows."""
    from sklearn.compose import ColumnTransformer

    steps = getattr(model, "steps", None)
    if not steps or not isinstance(steps[0][1], ColumnTransformer):
        return None
    plan = _column_plan(steps[0][1], features)
    if plan is None:
        return None
    rest = [est for _name, est in steps[1:]]
    run = functools.partial(_run_plan, plan, rest[:-1], rest[-1])
    probe = np.random.default_rng(0).normal(0.0, 3.0, size=(32, len(features)))
    try:
        reference = model.predict(pd.DataFrame(probe, columns=features))
        agrees = bool(np.array_equal(run(probe), reference))
    except Exception:
        return None
    return run if agrees else None


def _column_plan(ct: Any, features: list[str]) -> list[tuple[Any, list[int]]] | None:
    if getattr(ct, "sparse_output_", False):
        return None
    plan = []
    for _name, trans, cols in ct.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        names = [features[c] if isinstance(c, int | np.integer) else c for c in cols]
        if not all(n in features for n in names):
            return None
        plan.append((trans, [features.index(n) for n in names]))
    return plan or None


def _run_plan(plan: list[tuple[Any, list[int]]], middle: list[Any], final: Any, x: Any) -> Any:
    with warnings.catch_warnings():  # fitted on a DataFrame: "X has no feature names"
        warnings.simplefilter("ignore", UserWarning)
        parts = [x[:, idx] if isinstance(t, str) else t.transform(x[:, idx]) for t, idx in plan]
        z = parts[0] if len(parts) == 1 else np.hstack(parts)
        for est in middle:
            z = est.transform(z)
        return final.predict(z)


def plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
