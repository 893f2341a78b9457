"""Ingest steps: bring data into a pipeline as a pandas DataFrame.

* `ingest` loads one of scikit-learn's bundled toy datasets (no network);
* `ingest_file` reads a CSV or Parquet file whose *content* is part of the cache key;
* `ingest_sql` runs a query through SQLAlchemy. It never caches, because a database can
  change underneath; downstream steps still hit the cache when the rows are the same.

Every frame returned has string column names (Parquet requires it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import sqlalchemy
import sqlalchemy.exc
from sklearn import datasets

from orchestrator import FileInput, OrchestratorError, step

from ._runtime import log_info

DATASETS = ("breast_cancer", "diabetes", "digits", "iris", "wine")
FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def _str_columns(df: pd.DataFrame) -> pd.DataFrame:
    if all(isinstance(c, str) for c in df.columns):
        return df
    return df.rename(columns={c: str(c) for c in df.columns})


@step(name="ingest", kind="ingest")
def load_sklearn_dataset(dataset: str = "iris", target: str = "target") -> pd.DataFrame:
    """Load a scikit-learn toy dataset as one frame: the features plus a `target` column."""
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
        if format not in set(FILE_FORMATS.values()):
            raise OrchestratorError(
                f"ingest: unknown format '{format}' for {path}; "
                f"use one of auto, {', '.join(sorted(set(FILE_FORMATS.values())))}"
            )
        return format
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise OrchestratorError(
            f"ingest: cannot tell the format of {path} from its suffix '{suffix}'; "
            f"use a {', '.join(FILE_FORMATS)} file or pass format=csv|tsv|parquet"
        )
    return FILE_FORMATS[suffix]


@step(name="ingest_file", kind="ingest")
def load_file(path: FileInput, format: str = "auto") -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file (by suffix, or by `format`)."""
    path = Path(path)
    fmt = _file_format(path, format)
    if not path.is_file():
        raise OrchestratorError(f"ingest: file not found: {path}")
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
    except (OSError, ValueError) as exc:
        raise OrchestratorError(f"ingest: cannot read {path} as {fmt}: {exc}") from exc
    log_info("ingested file", path=str(path), format=fmt, rows=len(frame))
    return _str_columns(frame)


def mask_url(url: str) -> str:
    """The database URL with its password replaced by ***."""
    try:
        return sqlalchemy.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _db_message(exc: BaseException) -> str:
    """The database's own message, without SQLAlchemy's SQL echo and help link."""
    if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ is not None:
        exc = exc.__cause__
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc)


@step(name="ingest_sql", kind="ingest", cache=False)
def load_sql(url: str, query: str) -> pd.DataFrame:
    """Run `query` against the database at `url` (any SQLAlchemy URL) and return the rows."""
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
