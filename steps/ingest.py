"""Ingest steps: bring data into a pipeline as a pandas DataFrame.

* `ingest` loads one of scikit-learn's bundled toy datasets (no network);
* `ingest_file` reads a CSV, TSV, Parquet, Excel or JSON-lines file whose *content* is
  part of the cache key. Excel needs the optional `excel` extra (openpyxl for `.xlsx`,
  xlrd for the legacy `.xls`); without it, one error names the file and the extra;
* `ingest_sql` runs a query through SQLAlchemy. It never caches, because a database can
  change underneath; downstream steps still hit the cache when the rows are the same.

Every frame returned has string column names (Parquet requires it).
"""

from __future__ import annotations

import importlib
import re
import zipfile
from pathlib import Path
from typing import Any

from orchestrator import FileInput, OrchestratorError, step

from ._runtime import log_info
from ._types import DataFrame

DATASETS = ("breast_cancer", "diabetes", "digits", "iris", "wine")
FILE_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xls": "excel",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
FORMATS = ("csv", "tsv", "parquet", "excel", "jsonl")
EXCEL_ENGINES = {".xls": "xlrd"}  # any other suffix is read as .xlsx, by openpyxl


def _str_columns(df: DataFrame) -> DataFrame:
    if all(isinstance(c, str) for c in df.columns):
        return df
    return df.rename(columns={c: str(c) for c in df.columns})


@step(name="ingest", kind="ingest")
def load_sklearn_dataset(dataset: str = "iris", target: str = "target") -> DataFrame:
    """Load a scikit-learn toy dataset as one frame: the features plus a `target` column."""
    from sklearn import datasets

    if dataset not in DATASETS:
        raise OrchestratorError(
            f"ingest: unknown dataset '{dataset}'; choose one of {', '.join(DATASETS)}"
        )
    bunch = getattr(datasets, f"load_{dataset}")(as_frame=True)
    frame = _str_columns(bunch.frame.copy())
    if target != "target":
        if target in frame.columns:
            raise OrchestratorError(
                f"ingest: target column name '{target}' clashes with a feature of '{dataset}'"
            )
        frame = frame.rename(columns={"target": target})
    log_info("ingested dataset", dataset=dataset, rows=len(frame), columns=len(frame.columns))
    return frame


def _file_format(path: Path, format: str) -> str:
    if format != "auto":
        if format not in FORMATS:
            raise OrchestratorError(
                f"ingest: unknown format '{format}' for {path}; use one of auto, "
                f"{', '.join(FORMATS)}"
            )
        return format
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise OrchestratorError(
            f"ingest: cannot tell the format of {path} from its suffix '{suffix}'; "
            f"supported suffixes: {', '.join(FILE_FORMATS)}; or pass format="
            f"{'|'.join(FORMATS)}"
        )
    return FILE_FORMATS[suffix]


def _excel_engine(path: Path) -> str:
    """The reader package for an Excel file, checked importable (the `excel` extra)."""
    engine = EXCEL_ENGINES.get(path.suffix.lower(), "openpyxl")
    try:
        importlib.import_module(engine)
    except ImportError:
        raise OrchestratorError(
            f"ingest: reading {path} needs {engine}, which is not installed; "
            "install the excel extra: pip install 'orchestrator[excel]'"
        ) from None
    return engine


def _read(path: Path, fmt: str, sheet: str | int) -> DataFrame:
    import pandas as pd

    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "excel":
        frame: Any = pd.read_excel(path, sheet_name=sheet, engine=_excel_engine(path))
        return frame
    if fmt == "jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")


@step(name="ingest_file", kind="ingest")
def load_file(path: FileInput, format: str = "auto", sheet: str | int = 0) -> DataFrame:
    """Read a CSV, TSV, Parquet, Excel or JSON-lines file (by suffix, or by `format`).

    `sheet` (a name or a 0-based position) picks the worksheet of an Excel file.
    """
    path = Path(path)
    fmt = _file_format(path, format)
    if not path.is_file():
        raise OrchestratorError(f"ingest: file not found: {path}")
    try:
        frame = _read(path, fmt, sheet)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise OrchestratorError(f"ingest: cannot read {path} as {fmt}: {exc}") from exc
    log_info("ingested file", path=str(path), format=fmt, rows=len(frame))
    return _str_columns(frame)


def mask_url(url: str) -> str:
    """The database URL with its password replaced by ***."""
    import sqlalchemy
    import sqlalchemy.exc

    try:
        return sqlalchemy.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _db_message(exc: BaseException) -> str:
    """The database's own message, without SQLAlchemy's SQL echo and help link."""
    import pandas as pd

    if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ is not None:
        exc = exc.__cause__
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc)


@step(name="ingest_sql", kind="ingest", cache=False)
def load_sql(url: str, query: str) -> DataFrame:
    """Run `query` against the database at `url` (any SQLAlchemy URL) and return the rows."""
    import pandas as pd
    import sqlalchemy
    import sqlalchemy.exc

    try:
        engine = sqlalchemy.create_engine(url)
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise OrchestratorError(f"ingest: cannot connect to {mask_url(url)}: {exc}") from None
    try:
        with engine.connect() as conn:
            frame = pd.read_sql(query, conn)
    except (sqlalchemy.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        raise OrchestratorError(
            f"ingest: query failed on {mask_url(url)}: {_db_message(exc)}"
        ) from None
    finally:
        engine.dispose()
    log_info("ingested query", url=mask_url(url), rows=len(frame))
    return _str_columns(frame)
