"""Many rows of one table as one PostgreSQL statement: the rows travel as one JSON parameter.

`Records(table, cols)` builds, for the columns `cols` of `table`, an INSERT (or UPDATE by
key) whose rows come from `json_to_recordset(%s::json)`: the server expands the array
of objects into typed rows, so a round's rows of one kind cost one statement however
many there are, and psycopg adapts one string instead of one value per cell.

Values are what the per-row statements of store/pgpath.py sent: a JSON column's value
travels as its JSON text (a string in the document, cast to `json` by the server), so
the stored text is `json.dumps(value)` byte for byte and `None` is the JSON `null`; a
time is an aware UTC ISO text (`timestamptz` keeps it to the microsecond); a float that
is not finite travels as the text PostgreSQL reads it from (`NaN`, `Infinity`); every
other value is itself (JSON numbers keep big integers and floats exact). A value shared
by several rows (one object: a mapped step's parameters) is encoded once.

Invariants: an insert keeps the rows' order (a serial `id` follows it); an UPDATE changes
each keyed row at most once, so `update_groups` splits rows whose keys repeat into
successive statements, applied in the order given (the last change wins, as it did row
by row). An unencodable value is a `StoreError` naming the table and column.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Float, Table
from sqlalchemy.dialects import postgresql

from orchestrator.errors import StoreError
from orchestrator.store import schema as t

_PG = postgresql.dialect()
_dumps = json.JSONEncoder().encode  # what json.dumps(v) calls (the stored JSON text)
_document = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
_NOT_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _time(v: Any) -> Any:
    if v is None:
        return None
    v = v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)
    return v.isoformat()


def _float(v: Any) -> Any:
    if not isinstance(v, float) or math.isfinite(v):
        return v
    return _NOT_FINITE.get(v, "NaN")


def _kind(column: Any) -> str:
    if column.type.__class__.__name__ == "JSON":
        return "json"
    if isinstance(column.type, t.UTCDateTime):
        return "time"
    if isinstance(column.type, Float):
        return "float"
    return "plain"


class Records:
    """The statements of many rows of `table`'s columns `cols` (and `keys`, for updates)."""

    def __init__(self, table: Table, cols: tuple[str, ...], keys: tuple[str, ...] = ()) -> None:
        self.table, self.cols, self.keys = table, cols, keys
        by_name = {c.name: c for c in table.columns}
        self.kinds = {c: _kind(by_name[c]) for c in cols}
        self.json_cols = [c for c in cols if self.kinds[c] == "json"]
        self.time_cols = [c for c in cols if self.kinds[c] == "time"]
        self.float_cols = [c for c in cols if self.kinds[c] == "float"]
        typed = [
            f"{c} {'text' if self.kinds[c] == 'json' else by_name[c].type.compile(dialect=_PG)}"
            for c in cols
        ]
        typed += [f"_{k} {by_name[k].type.compile(dialect=_PG)}" for k in keys]
        self.source = f"json_to_recordset(%s::json) AS r({', '.join(typed)})"

    def _value(self, c: str) -> str:
        return f"r.{c}::json" if self.kinds[c] == "json" else f"r.{c}"

    def insert_sql(self, ignore: bool = False) -> str:
        """One INSERT of every row of the document, in its order."""
        tail = " ON CONFLICT DO NOTHING" if ignore else ""
        values = ", ".join(self._value(c) for c in self.cols)
        return (
            f"INSERT INTO {self.table.name} ({', '.join(self.cols)}) "
            f"SELECT {values} FROM {self.source}{tail}"
        )

    def update_sql(self) -> str:
        """One UPDATE setting `cols` of the rows matching each document row's `keys`."""
        name = self.table.name
        sets = ", ".join(f"{c} = {self._value(c)}" for c in self.cols)
        match = " AND ".join(f"{name}.{k} = r._{k}" for k in self.keys)
        return f"UPDATE {name} SET {sets} FROM {self.source} WHERE {match}"

    def document(self, rows: Iterable[dict[str, Any]]) -> str:
        """The rows (dicts; an absent column is NULL) as the statement's JSON parameter."""
        shared: dict[int, tuple[str, Any]] = {}
        out = []
        for r in rows:
            row = {c: r.get(c) for c in self.cols}
            for k in self.keys:
                row[f"_{k}"] = r[k]
            for c in self.json_cols:
                v = row[c]
                enc = shared.get(id(v))
                if enc is None:
                    enc = shared[id(v)] = (self._json(c, v), v)  # v kept alive: its id its own
                row[c] = enc[0]
            for c in self.time_cols:
                row[c] = _time(row[c])
            for c in self.float_cols:
                row[c] = _float(row[c])
            out.append(row)
        try:
            return _document(out)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"cannot record rows of {self.table.name}: {exc}") from None

    def _json(self, col: str, v: Any) -> str:
        try:
            return _dumps(v)
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"cannot record {self.table.name}.{col}: {exc} (JSON values only)"
            ) from None

    def update_groups(self, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """`rows` in groups whose keys do not repeat, in order: the n-th change of a row is
        in the n-th group (most batches: one group)."""
        seen: dict[tuple[Any, ...], int] = {}
        groups: list[list[dict[str, Any]]] = []
        for r in rows:
            key = tuple(r[k] for k in self.keys)
            n = seen[key] = seen.get(key, -1) + 1
            if n == len(groups):
                groups.append([])
            groups[n].append(r)
        return groups
