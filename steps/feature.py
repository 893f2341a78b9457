"""The feature step: a seeded train/test split and a preprocessor fit on train only.

`split_features` returns the raw train and test frames (target column included) and a
`ColumnTransformer` fitted on the training rows alone, so no statistic of the test rows
leaks into training: numeric columns are standardised (or passed through), text,
category and bool columns one-hot encoded, unknown categories ignored at predict time.
"""

from __future__ import annotations

from orchestrator import OrchestratorError, step

from ._runtime import log_info, log_warning
from ._types import ColumnTransformer, DataFrame


def require_target(df: DataFrame, target: str, where: str) -> None:
    """Raise a clear error when `target` is not a column of `df`."""
    if target not in df.columns:
        have = ", ".join(sorted(map(str, df.columns)))
        raise OrchestratorError(
            f"{where}: target column '{target}' not found; the frame has columns: {have}"
        )


def _column_groups(x: DataFrame) -> tuple[list[str], list[str], list[str]]:
    """Split feature columns into numeric, categorical and unsupported (dropped)."""
    import pandas as pd
    from pandas.api import types as ptypes

    numeric, categorical, other = [], [], []
    for name, dtype in x.dtypes.items():
        if ptypes.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            categorical.append(str(name))
        elif ptypes.is_numeric_dtype(dtype):
            numeric.append(str(name))
        elif ptypes.is_string_dtype(dtype) or ptypes.is_object_dtype(dtype):
            categorical.append(str(name))
        else:
            other.append(str(name))
    return numeric, categorical, other


def make_preprocessor(x: DataFrame, scale: bool) -> ColumnTransformer:
    """An unfitted ColumnTransformer for the feature columns of `x`."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, categorical, other = _column_groups(x)
    if other:
        log_warning("feature columns dropped: unsupported dtype", columns=other)
    transformers: list[tuple[str, object, list[str]]] = []
    if numeric:
        transformers.append(("numeric", StandardScaler() if scale else "passthrough", numeric))
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore")
        transformers.append(("categorical", encoder, categorical))
    if not transformers:
        raise OrchestratorError(
            f"features: no usable feature columns (unsupported dtypes: {', '.join(other)})"
        )
    return ColumnTransformer(transformers, remainder="drop")


@step(name="features", kind="feature")
def split_features(
    df: DataFrame,
    target: str = "target",
    test_size: float = 0.2,
    seed: int = 0,
    scale: bool = True,
    stratify: bool = False,
) -> tuple[DataFrame, DataFrame, ColumnTransformer]:
    """Split `df` into (train, test) with seed `seed`; fit the preprocessor on train only."""
    from sklearn.model_selection import train_test_split

    require_target(df, target, "features")
    if not 0.0 < test_size < 1.0:
        raise OrchestratorError(f"features: test_size must be in (0, 1), got {test_size}")
    try:
        train, test = train_test_split(
            df,
            test_size=test_size,
            random_state=seed,
            stratify=df[target] if stratify else None,
        )
    except ValueError as exc:
        raise OrchestratorError(
            f"features: cannot split {len(df)} rows with test_size={test_size}"
            f"{' and stratify=True' if stratify else ''}: {exc}"
        ) from None
    features = train.drop(columns=[target])
    preprocessor = make_preprocessor(features, scale)
    preprocessor.fit(features, train[target])
    log_info("split features", train_rows=len(train), test_rows=len(test), seed=seed)
    return train, test, preprocessor
