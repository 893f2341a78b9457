"""Every serializer gives back a value equal to the one stored, of the same type, recursively.

A property test over generated values (hypothesis) for the JSON path, and a table of the
pandas and numpy values whose types a round trip used to change.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
import zoneinfo
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from orchestrator.artifacts import tagged
from orchestrator.artifacts.store import ArtifactStore, choose_serializer
from orchestrator.errors import ArtifactError


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type, all the way down (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        keys = {(type(k), k): k for k in b}
        return all(
            (type(k), k) in keys and same(k, keys[(type(k), k)]) and same(v, b[keys[(type(k), k)]])
            for k, v in a.items()
        )
    if isinstance(a, set | frozenset):
        return a == b and {type(x) for x in a} == {type(x) for x in b}
    if isinstance(a, dt.datetime):
        return a == b and a.tzinfo == b.tzinfo and a.fold == b.fold
    return bool(a == b)


_np_scalars = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(np.int32),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 255).map(np.uint8),
    st.floats(allow_nan=True, width=32).map(np.float32),
    st.floats(allow_nan=True).map(np.float64),
    st.booleans().map(np.bool_),
    st.text(max_size=5).map(np.str_),
    st.integers(-(10**15), 10**15).map(lambda n: np.datetime64(n, "ns")),
)
_np_arrays = st.lists(st.floats(allow_nan=True), max_size=6).map(np.array) | st.lists(
    st.integers(-100, 100), max_size=6
).map(lambda xs: np.array(xs, dtype="int16"))
_hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.dates(),
    st.timedeltas(),
    st.datetimes(timezones=st.none() | st.just(dt.UTC) | st.timezone_keys().map(zoneinfo.ZoneInfo)),
)
_scalars = (
    _hashable_scalars
    | st.floats(allow_nan=True)
    | _np_scalars
    | st.complex_numbers(allow_nan=False)
)
_hashables = st.recursive(
    _hashable_scalars,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
_keys = st.one_of(st.text(max_size=6), st.integers(), st.tuples(st.integers(), st.text(max_size=3)))

values = st.recursive(
    _scalars | _np_arrays,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.sets(_hashables, max_size=4),
        st.frozensets(_hashables, max_size=4),
        st.dictionaries(_keys, inner, max_size=4),
        st.dictionaries(st.text(max_size=4).map(lambda s: "$" + s), inner, max_size=2),
    ),
    max_leaves=20,
)


@given(values)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_tagged_json_gives_back_equal_values_of_the_same_type(value: Any) -> None:
    data = tagged.dumps(value)
    back = tagged.loads(data)
    assert same(value, back), (value, back)
    assert tagged.dumps(back) == data  # the same value always gives the same bytes


@given(values)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_store_gives_back_what_it_was_given(tmp_path: Path, value: Any) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    back = store.get(store.put(value))
    assert same(value, back), (value, back)


def test_plain_json_is_written_as_before() -> None:
    assert tagged.dumps({"b": [1, 2.5, None], "a": "x"}) == b'{"a":"x","b":[1,2.5,null]}'
    assert tagged.dumps((1, 2)) == b'{"$tuple":[1,2]}'
    assert tagged.dumps({2: "a", 1: "b"}) == b'{"$dict":[[1,"b"],[2,"a"]]}'


def test_types_json_would_change_are_refused_not_stored_changed(tmp_path: Path) -> None:
    import enum

    class Color(enum.StrEnum):
        RED = "red"

    with pytest.raises(ArtifactError, match=r"\(it holds a .*Color\)"):
        choose_serializer({"c": Color.RED})
    with pytest.raises(ArtifactError, match="no serializer"):
        choose_serializer(pd.Timestamp("2024-01-01"))  # a datetime subclass


FRAMES = {
    "range index": pd.DataFrame({"a": [1, 2, 3]}),
    "stepped range index": pd.DataFrame({"a": [1, 2]}, index=pd.RangeIndex(10, 14, 2)),
    "int64 index": pd.DataFrame({"a": [1, 2]}, index=pd.Index([5, 9])),
    "named index": pd.DataFrame({"a": [1, 2]}, index=pd.Index(["x", "y"], name="id")),
    "multi index": pd.DataFrame(
        {"a": [1, 2]}, index=pd.MultiIndex.from_tuples([(1, "x"), (2, "y")], names=["i", "j"])
    ),
    "range columns": pd.DataFrame(np.zeros((2, 3))),
    "categorical": pd.DataFrame(
        {"c": pd.Categorical(["a", "b", "a"], categories=["b", "a", "z"], ordered=True)}
    ),
    "tz-aware": pd.DataFrame(
        {"t": pd.date_range("2024-10-27", periods=3, freq="h", tz="Europe/Berlin")}
    ),
    "daily index with freq": pd.DataFrame(
        {"a": [1, 2]}, index=pd.date_range("2024-01-01", periods=2, freq="D")
    ),
    "nan and none": pd.DataFrame({"f": [1.0, np.nan], "s": [None, "x"]}),
    "int32 and float32": pd.DataFrame(
        {"i": np.array([1, 2], dtype="int32"), "f": np.array([1, 2], dtype="float32")}
    ),
    "nullable Int64": pd.DataFrame({"a": pd.array([1, None], dtype="Int64")}),
    "object strings": pd.DataFrame({"o": pd.Series(["a", "b"], dtype=object)}),
}


@pytest.mark.parametrize("formats", [("arrow", "arrow_series"), ("parquet", "series")])
@pytest.mark.parametrize("name", list(FRAMES))
def test_frames_come_back_with_their_dtypes_and_index(
    tmp_path: Path, name: str, formats: tuple[str, str]
) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    df = FRAMES[name]
    frame_format, series_format = formats
    ref = store.put(df, frame_format)
    assert ref.serializer == frame_format
    back = store.get(ref)
    pd.testing.assert_frame_equal(
        back, df, check_exact=True, check_index_type=True, check_column_type=True, check_freq=True
    )
    series = df.iloc[:, 0].rename(0)  # an int name, too
    back_s = store.get(store.put(series, series_format))
    pd.testing.assert_series_equal(back_s, series, check_exact=True, check_index_type=True)
    assert back_s.name == 0 and type(back_s.name) is int


def test_a_frame_its_format_would_change_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    with pytest.raises(ArtifactError, match="from Arrow IPC: column 'l' differs"):
        store.put(pd.DataFrame({"l": [[1, 2], [3]]}))
    seconds = pd.DataFrame({"t": pd.to_datetime(["2024-01-01"]).as_unit("s")})
    back = store.get(store.put(seconds))  # Arrow IPC keeps the unit
    pd.testing.assert_frame_equal(back, seconds, check_exact=True)
    with pytest.raises(ArtifactError, match="would not come back the same from Parquet"):
        store.put(seconds, "parquet")  # Parquet has no seconds unit


def test_numpy_values_keep_their_dtype(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    for value in (np.float64(1.5), np.int8(-3), np.arange(6, dtype="float16").reshape(2, 3)):
        back = store.get(store.put(value))
        assert same(value, back)
    with pytest.raises(ArtifactError, match="no serializer"):
        choose_serializer(np.matrix([[1]]))  # a subclass would come back a plain ndarray


def test_decimal_and_complex_keep_their_type() -> None:
    for value in (decimal.Decimal("1.10"), complex(1, -2)):
        assert same(value, tagged.loads(tagged.dumps(value)))


class Scores(BaseModel):
    auc: float
    pair: tuple[int, int]


class Loose(BaseModel):
    value: Any


class LooseWithId(BaseModel):
    id: uuid.UUID  # tagged JSON has no UUID: pydantic's own JSON is used
    value: Any


def test_pydantic_models_keep_their_field_types_and_nan(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    scores = Scores(auc=float("nan"), pair=(1, 2))
    back = store.get(store.put(scores))
    assert type(back) is Scores and math.isnan(back.auc) and back.pair == (1, 2)
    loose = store.get(store.put(Loose(value=(1, {2: "x"}))))
    assert type(loose.value) is tuple and loose.value == (1, {2: "x"})
    with pytest.raises(ArtifactError, match="would not come back the same from JSON"):
        store.put(LooseWithId(id=uuid.uuid4(), value=(1, 2)))
