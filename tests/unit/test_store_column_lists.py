"""The plain column lists the raw SQLite path uses are the schema's columns."""

from __future__ import annotations

from orchestrator.store import columns
from orchestrator.store import schema as t
from orchestrator.store.cache_index import CHUNK


def test_each_table_lists_the_schema_columns_in_order() -> None:
    for name, cols in columns.TABLE_COLS.items():
        assert cols == tuple(c.name for c in t.metadata.tables[name].columns), name


def test_json_and_time_columns_are_the_schema_types() -> None:
    every = [c for tbl in t.metadata.tables.values() for c in tbl.columns]
    assert columns.JSON_COLS == {c.name for c in every if c.type.__class__.__name__ == "JSON"}
    assert columns.TIME_COLS == {c.name for c in every if isinstance(c.type, t.UTCDateTime)}


def test_updates_name_only_real_columns() -> None:
    assert set(columns.UPDATE_COLS) <= set(columns.STEP_COLS)
    assert set(columns.ATTEMPT_UPDATE_COLS) <= set(columns.ATTEMPT_COLS)
    assert columns.CHUNK == CHUNK
