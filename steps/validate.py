"""The validate step: declarative checks on a DataFrame, reported all at once.

`validate_frame` runs every check it was given (row count, dtypes, value ranges, nulls)
and builds a `ValidationReport`. It never stops at the first failure: when any check
fails it raises `ValidationFailed` whose message lists every check, PASS or FAIL, with
the column and expected vs actual. On success the frame passes through unchanged.
"""

from __future__ import annotations

from pydantic import BaseModel

from orchestrator import OrchestratorError, step

from ._runtime import log_info
from ._types import DataFrame, Series

KINDS = ("number", "integer", "float", "string", "category", "bool", "datetime")
FRAME = "(frame)"


class Check(BaseModel):
    """One check and its outcome. `column` is "(frame)" for whole-frame checks."""

    name: str
    column: str
    passed: bool
    detail: str


class ValidationReport(BaseModel):
    """Every check run by `validate_frame` on a frame of `rows` rows."""

    passed: bool
    rows: int
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        if self.passed:
            return f"validation passed: {len(self.checks)} checks on {self.rows} rows"
        return f"validation failed: {len(self.failed)} of {len(self.checks)} checks failed"

    def render(self) -> str:
        """One line per check: `FAIL  range  col: 3 values outside [0, 5] (min 1.0, max 6.9)`."""
        width = max((len(c.name) for c in self.checks), default=0)
        return "\n".join(
            f"{'PASS' if c.passed else 'FAIL'}  {c.name:<{width}}  {c.column}: {c.detail}"
            for c in self.checks
        )


class ValidationFailed(OrchestratorError):
    """One or more checks failed; `report` holds every check."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(f"{report.summary()}\n{report.render()}")

    def __reduce__(self) -> tuple[type[ValidationFailed], tuple[ValidationReport]]:
        return (type(self), (self.report,))


# -- checks ---------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{float(x):g}"


def _missing(name: str, column: str, df: DataFrame) -> Check:
    have = ", ".join(sorted(map(str, df.columns)))
    return Check(name=name, column=column, passed=False, detail=f"missing column (have: {have})")


def _kind_matches(series: Series, kind: str) -> bool:
    import pandas as pd
    from pandas.api import types as ptypes

    dtype = series.dtype
    if kind == "number":
        return ptypes.is_numeric_dtype(dtype) and not ptypes.is_bool_dtype(dtype)
    if kind == "integer":
        return ptypes.is_integer_dtype(dtype)
    if kind == "float":
        return ptypes.is_float_dtype(dtype)
    if kind == "string":
        return ptypes.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    if kind == "category":
        return isinstance(dtype, pd.CategoricalDtype)
    if kind == "bool":
        return ptypes.is_bool_dtype(dtype)
    if kind == "datetime":
        return ptypes.is_datetime64_any_dtype(dtype)
    return bool(dtype == pd.api.types.pandas_dtype(kind))


def _check_kinds(columns: dict[str, str]) -> None:
    import pandas as pd

    for column, kind in columns.items():
        if kind in KINDS:
            continue
        try:
            pd.api.types.pandas_dtype(kind)
        except TypeError:
            raise OrchestratorError(
                f"validate: column '{column}': unknown dtype '{kind}'; "
                f"use one of {', '.join(KINDS)} or a numpy dtype name such as int64"
            ) from None


def _dtype_check(df: DataFrame, column: str, kind: str) -> Check:
    if column not in df.columns:
        return _missing("dtype", column, df)
    actual = str(df[column].dtype)
    ok = _kind_matches(df[column], kind)
    return Check(name="dtype", column=column, passed=ok, detail=f"expected {kind}, got {actual}")


def _range_check(df: DataFrame, column: str, lo: float | None, hi: float | None) -> Check:
    import pandas as pd
    from pandas.api import types as ptypes

    if column not in df.columns:
        return _missing("range", column, df)
    values = df[column]
    bounds = f"[{'-inf' if lo is None else _num(lo)}, {'inf' if hi is None else _num(hi)}]"
    if not ptypes.is_numeric_dtype(values.dtype) or ptypes.is_bool_dtype(values.dtype):
        detail = f"expected numbers in {bounds}, got dtype {values.dtype}"
        return Check(name="range", column=column, passed=False, detail=detail)
    present = values.dropna()
    outside = pd.Series(False, index=present.index)
    if lo is not None:
        outside |= present < lo
    if hi is not None:
        outside |= present > hi
    n = int(outside.sum())
    seen = f"(min {float(present.min())!r}, max {float(present.max())!r})" if len(present) else ""
    detail = f"{n} values outside {bounds} {seen}" if n else f"all values within {bounds} {seen}"
    return Check(name="range", column=column, passed=n == 0, detail=detail.rstrip())


def _not_null_check(df: DataFrame, column: str) -> Check:
    if column not in df.columns:
        return _missing("not_null", column, df)
    n = int(df[column].isna().sum())
    detail = f"{n} nulls ({n / max(len(df), 1):.1%} of rows), expected none" if n else "no nulls"
    return Check(name="not_null", column=column, passed=n == 0, detail=detail)


def _null_fraction_check(df: DataFrame, max_fraction: float) -> Check:
    import pandas as pd

    fractions = df.isna().mean() if len(df) else pd.Series(0.0, index=df.columns)
    over = fractions[fractions > max_fraction].sort_values(ascending=False)
    if over.empty:
        worst = float(fractions.max()) if len(fractions) else 0.0
        detail = f"no column over {max_fraction:.1%} nulls (worst {worst:.1%})"
        return Check(name="nulls", column=FRAME, passed=True, detail=detail)
    listed = ", ".join(f"{c} ({f:.1%})" for c, f in over.items())
    detail = f"{len(over)} columns over {max_fraction:.1%} nulls: {listed}"
    return Check(name="nulls", column=FRAME, passed=False, detail=detail)


def _rows_check(df: DataFrame, min_rows: int) -> Check:
    detail = f"{len(df)} rows, expected at least {min_rows}"
    return Check(name="rows", column=FRAME, passed=len(df) >= min_rows, detail=detail)


# -- step -----------------------------------------------------------------------------


@step(name="validate", kind="validate")
def validate_frame(
    df: DataFrame,
    columns: dict[str, str] | None = None,
    ranges: dict[str, tuple[float | None, float | None]] | None = None,
    not_null: list[str] | None = None,
    max_null_fraction: float = 0.0,
    min_rows: int = 1,
) -> tuple[DataFrame, ValidationReport]:
    """Check `df`; return it unchanged with the report, or raise `ValidationFailed`.

    `columns` maps a column to its expected dtype: number, integer, float, string,
    category, bool, datetime, or a numpy dtype name. `ranges` maps a column to inclusive
    `(low, high)` bounds (None for open). `max_null_fraction` applies to every column.
    """
    if not 0.0 <= max_null_fraction <= 1.0:
        raise OrchestratorError(
            f"validate: max_null_fraction must be in [0, 1], got {max_null_fraction}"
        )
    _check_kinds(columns or {})
    checks = [_rows_check(df, min_rows)]
    checks += [_dtype_check(df, col, kind) for col, kind in (columns or {}).items()]
    checks += [_range_check(df, col, lo, hi) for col, (lo, hi) in (ranges or {}).items()]
    checks += [_not_null_check(df, col) for col in (not_null or [])]
    checks.append(_null_fraction_check(df, max_null_fraction))
    report = ValidationReport(passed=all(c.passed for c in checks), rows=len(df), checks=checks)
    log_info(report.summary(), failed=[f"{c.name} {c.column}" for c in report.failed])
    if not report.passed:
        raise ValidationFailed(report)
    return df, report
