"""DataFrames, Series and Arrow tables as Arrow IPC (or Parquet), given back as they went in.

Arrow IPC (the Feather v2 file format, uncompressed) is the default: it writes a frame's
buffers as they are, so writing and reading run at memory speed, and a read from a
memory-mapped file decodes without copying the file first. Parquet (zstd) is kept for a
step that asks for it (`hints={"serializer": "parquet"}`) and for artifacts written
before Arrow IPC was the default: their rows name `parquet` / `series`, and they stay
readable.

pyarrow's pandas metadata restores dtypes, categoricals (with their categories and
order), time zones, named indexes, MultiIndexes and a RangeIndex (kept as metadata, not
as a column). What it does not restore is kept in the schema metadata under `orch`: the
index frequency, RangeIndex column labels, object-dtype columns and a Series' name.
Before writing, `check_frame` round-trips the first rows through the chosen format and
refuses (one `ArtifactError` naming the column) a frame that would still come back
different, e.g. lists in an object column. Invariants: a dump writes one stream to the
file object it is given and keeps no copy of the frame's data beyond Arrow's zero-copy
view of it; a load never writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import IO, Any

from orchestrator.artifacts import tagged
from orchestrator.errors import ArtifactError

_META = b"orch"  # schema metadata: what pyarrow's pandas metadata does not give back
_SERIES = "__series__"

Through = Callable[[Any], Any]  # a table -> the same table after a trip through a format


# -- writing tables -----------------------------------------------------------------------


def _write_ipc(table: Any, fp: IO[bytes]) -> None:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with ipc.new_file(pa.PythonFile(fp, mode="w"), table.schema) as writer:
        writer.write_table(table)


def _write_parquet(table: Any, fp: IO[bytes]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # dictionary encoding pays off for repeated values (strings, categories), not floats
    dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    pq.write_table(
        table, pa.PythonFile(fp, mode="w"), compression="zstd", use_dictionary=dictionary
    )


def _read_ipc(data: bytes | memoryview) -> Any:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    return ipc.open_file(pa.py_buffer(data)).read_all()


def _read_parquet(data: bytes | memoryview) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(pa.py_buffer(data)))


def _through_ipc(table: Any) -> Any:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    _write_ipc(table, sink)
    return _read_ipc(sink.getvalue())


def _through_parquet(table: Any) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return _read_parquet(sink.getvalue())


# -- frames and series --------------------------------------------------------------------


def _df_table(value: Any, extra: dict[str, Any] | None = None) -> Any:
    import pandas as pd
    import pyarrow as pa

    table = pa.Table.from_pandas(value, preserve_index=None)  # a RangeIndex stays metadata
    meta: dict[str, Any] = dict(extra or {})
    freq = getattr(value.index, "freqstr", None)
    if freq:
        meta["freq"] = freq
    cols = value.columns
    if isinstance(cols, pd.RangeIndex):
        meta["columns_range"] = [cols.start, cols.stop, cols.step]
    objects = [i for i, d in enumerate(value.dtypes) if str(d) == "object"]
    if objects:
        meta["object_columns"] = objects
    if not meta:
        return table
    return table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _META: json.dumps(meta).encode()}
    )


def _frame_from_table(table: Any) -> tuple[Any, dict[str, Any]]:
    import pandas as pd

    meta = json.loads((table.schema.metadata or {}).get(_META, b"{}"))
    df = table.to_pandas()
    for i, dtype in enumerate(df.dtypes):
        if (
            isinstance(dtype, pd.CategoricalDtype)
            and not df.iloc[:, i].cat.codes.values.flags.writeable
        ):
            df.isetitem(i, df.iloc[:, i].copy())  # codes are a read-only view of the file
    if "object_columns" in meta:
        for i in meta["object_columns"]:
            df[df.columns[i]] = df.iloc[:, i].astype(object)
    if "columns_range" in meta:
        df.columns = pd.RangeIndex(*meta["columns_range"])
    if "freq" in meta:
        df.index.freq = meta["freq"]
    return df, meta


def _series_frame(value: Any) -> tuple[Any, Callable[[Any], Any]]:
    name = {"name": tagged.encode(value.name)}
    return value.to_frame(name=_SERIES), lambda v: _df_table(v, name)


def _series_from_table(table: Any) -> Any:
    df, meta = _frame_from_table(table)
    s = df.iloc[:, 0]
    if "name" in meta:
        return s.rename(tagged.loads(json.dumps(meta["name"])))
    return s.rename(None) if s.name == _SERIES else s


def ipc_table(serializer: str, value: Any) -> Any | None:
    """The Arrow table `serializer` writes as Arrow IPC for `value`, after the same
    round-trip check its dump makes (raising the same error); None for a serializer that
    does not write one. Writing the table (`write_table`) gives the dump's bytes."""
    if serializer == "arrow":
        check_frame(value, _df_table, _through_ipc, "Arrow IPC")
        return _df_table(value)
    if serializer == "arrow_series":
        frame, to_table = _series_frame(value)
        check_frame(frame, to_table, _through_ipc, "Arrow IPC")
        return to_table(frame)
    if serializer == "arrow_table":
        return value  # an Arrow table is Arrow IPC's own value: nothing to check
    return None


def copy_on_write() -> bool:
    """Whether pandas copies shared data before changing it in place (always from 3.0)."""
    import pandas as pd

    if int(pd.__version__.split(".", 1)[0]) >= 3:
        return True
    return pd.options.mode.copy_on_write is True


def write_table(table: Any, fp: IO[bytes]) -> None:
    _write_ipc(table, fp)


def arrow_dump(value: Any, fp: IO[bytes]) -> None:
    _write_ipc(ipc_table("arrow", value), fp)


def arrow_load(data: bytes | memoryview, _type: str) -> Any:
    return _frame_from_table(_read_ipc(data))[0]


def arrow_series_dump(value: Any, fp: IO[bytes]) -> None:
    _write_ipc(ipc_table("arrow_series", value), fp)


def arrow_series_load(data: bytes | memoryview, _type: str) -> Any:
    return _series_from_table(_read_ipc(data))


def table_dump(value: Any, fp: IO[bytes]) -> None:
    _write_ipc(value, fp)


def table_load(data: bytes | memoryview, _type: str) -> Any:
    return _read_ipc(data)


def df_dump(value: Any, fp: IO[bytes]) -> None:
    check_frame(value, _df_table, _through_parquet, "Parquet")
    _write_parquet(_df_table(value), fp)


def df_loads(data: bytes | memoryview, _type: str) -> Any:
    return _frame_from_table(_read_parquet(data))[0]


def series_dump(value: Any, fp: IO[bytes]) -> None:
    frame, to_table = _series_frame(value)
    check_frame(frame, to_table, _through_parquet, "Parquet")
    _write_parquet(to_table(frame), fp)


def series_loads(data: bytes | memoryview, _type: str) -> Any:
    return _series_from_table(_read_parquet(data))


def read_table(serializer: str, data: bytes | memoryview) -> Any:
    """The Arrow table inside a frame artifact of either format (for previews)."""
    return _read_parquet(data) if serializer in ("parquet", "series") else _read_ipc(data)


# -- the round-trip check -----------------------------------------------------------------


def check_frame(value: Any, to_table: Any, through: Through, fmt: str) -> None:
    """Refuse a DataFrame whose first rows would not come back the same from `fmt`."""
    import pandas as pd

    sample = value.iloc[:5]
    back, _ = _frame_from_table(through(to_table(sample)))
    t = pd.testing
    checks: list[tuple[str, Any]] = [
        ("the index", lambda: t.assert_index_equal(back.index, sample.index, exact=True)),
        (
            "the column labels",
            lambda: t.assert_index_equal(back.columns, sample.columns, exact=True),
        ),
    ]
    for i, col in enumerate(sample.columns):
        checks.append(
            (
                f"column {col!r}",
                lambda i=i: t.assert_series_equal(
                    back.iloc[:, i], sample.iloc[:, i], check_exact=True, check_index=False
                ),
            )
        )
    if getattr(back.index, "freq", None) != getattr(sample.index, "freq", None):
        checks.append(("the index frequency", lambda: _fail("freq differs")))
    for what, check in checks:
        try:
            check()
        except AssertionError as exc:
            detail = " ".join(str(exc).split())[:160]
            raise ArtifactError(
                f"its DataFrame output would not come back the same from {fmt}: {what} "
                f"differs ({detail}); return a frame {fmt} keeps as it is, or store it with "
                "@step(hints={'serializer': 'pickle'})"
            ) from None


def _fail(msg: str) -> None:
    raise AssertionError(msg)
