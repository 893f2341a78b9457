"""DataFrames and Series as Parquet, given back with the types they went in with.

pyarrow's pandas metadata restores dtypes, categoricals (with their categories and
order), time zones, named indexes, MultiIndexes and a RangeIndex (kept as metadata, not
as a column). What it does not restore is kept in the schema metadata under `orch`: the
index frequency, RangeIndex column labels, object-dtype columns and a Series' name.
Before writing, `check_frame` round-trips the first rows and refuses (one
`ArtifactError` naming the column) a frame that would still come back different, e.g.
lists in an object column or a `datetime64[s]` column.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.artifacts import tagged
from orchestrator.errors import ArtifactError

_META = b"orch"  # schema metadata: what Parquet's pandas metadata does not give back


def df_dumps(value: Any) -> memoryview:
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_frame(value, _df_table)
    table = _df_table(value)
    sink = pa.BufferOutputStream()
    # dictionary encoding pays off for repeated values (strings, categories), not floats
    dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    pq.write_table(table, sink, compression="zstd", use_dictionary=dictionary)
    return memoryview(sink.getvalue())  # no copy: hashed and written from Arrow's buffer


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
    if "object_columns" in meta:
        for i in meta["object_columns"]:
            df[df.columns[i]] = df.iloc[:, i].astype(object)
    if "columns_range" in meta:
        df.columns = pd.RangeIndex(*meta["columns_range"])
    if "freq" in meta:
        df.index.freq = meta["freq"]
    return df, meta


def df_loads(data: bytes, _type: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return _frame_from_table(pq.read_table(pa.BufferReader(data)))[0]


def check_frame(value: Any, to_table: Any) -> None:
    """Refuse a DataFrame whose first rows would not come back the same from Parquet."""
    import pandas as pd

    sample = value.iloc[:5]
    back, _ = _frame_from_table(_through_parquet(to_table(sample)))
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
                f"its DataFrame output would not come back the same from Parquet: {what} "
                f"differs ({detail}); return a frame Parquet keeps as it is, or store it with "
                "@step(hints={'serializer': 'pickle'})"
            ) from None


def _through_parquet(table: Any) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return pq.read_table(pa.BufferReader(sink.getvalue()))


def _fail(msg: str) -> None:
    raise AssertionError(msg)


def series_dumps(value: Any) -> memoryview:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = {"name": tagged.encode(value.name)}
    frame = value.to_frame(name="__series__")

    def to_table(v: Any) -> Any:
        return _df_table(v, name)

    check_frame(frame, to_table)
    sink = pa.BufferOutputStream()
    pq.write_table(to_table(frame), sink, compression="zstd")
    return memoryview(sink.getvalue())


def series_loads(data: bytes, type_: str) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    df, meta = _frame_from_table(pq.read_table(pa.BufferReader(data)))
    s = df.iloc[:, 0]
    if "name" in meta:
        return s.rename(tagged.loads(json.dumps(meta["name"])))
    return s.rename(None) if s.name == "__series__" else s
