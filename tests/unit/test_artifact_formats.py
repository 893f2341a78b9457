"""Arrow IPC and .npy artifacts: round trips, memory-mapped reads, the hash of the bytes
written, corrupt files refused, old Parquet artifacts still read, failed writes reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from orchestrator.artifacts.store import ArtifactRef, ArtifactStore
from orchestrator.cache.hashing import hash_file
from orchestrator.errors import ArtifactError

OLD = Path(__file__).parent / "data" / "parquet_artifacts"  # written by the Parquet-only code


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def big_frame(rows: int = 200_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "f": rng.normal(size=rows),
            "i": rng.integers(0, 100, rows),
            "c": pd.Categorical(rng.choice(["a", "b", "c"], rows)),
            "s": rng.choice(["x", "yy", None], rows),
            "b": rng.random(rows) > 0.5,
        }
    )


FRAMES = {
    "small": pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
    "large (mapped)": big_frame(),
    "empty": pd.DataFrame({"a": pd.Series([], dtype="float64")}),
    "string index": pd.DataFrame({"a": [1.0, 2.0]}, index=pd.Index(["p", "q"], name="k")),
}


@pytest.mark.parametrize("name", list(FRAMES))
def test_frames_and_series_round_trip_through_arrow_ipc(store: ArtifactStore, name: str) -> None:
    df = FRAMES[name]
    ref = store.put(df)
    assert (ref.serializer, store.path(ref).suffix) == ("arrow", ".arrow")
    pd.testing.assert_frame_equal(store.get(ref), df, check_exact=True)
    if len(df.columns):
        series = df.iloc[:, 0].rename("named")
        sref = store.put(series)
        assert sref.serializer == "arrow_series"
        pd.testing.assert_series_equal(store.get(sref), series, check_exact=True)


def test_arrow_tables_round_trip_as_themselves(store: ArtifactStore) -> None:
    table = pa.table(
        {"n": pa.array([1, None, 3], pa.int16()), "s": ["a", "b", None], "l": [[1], [], [2, 3]]}
    ).replace_schema_metadata({b"k": b"v"})
    ref = store.put(table)
    assert ref.serializer == "arrow_table"
    back = store.get(ref)
    assert type(back) is pa.Table
    assert back.equals(table, check_metadata=True)


ARRAYS = {
    "int matrix": np.arange(12).reshape(3, 4),
    "fortran order": np.asfortranarray(np.arange(12, dtype="float32").reshape(3, 4)),
    "zero-d": np.array(3.5),
    "empty": np.zeros((0, 3)),
    "strings": np.array(["a", "bcd"]),
    "large (mapped)": np.random.default_rng(1).normal(size=(400, 1000)),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_numpy_arrays_round_trip_and_can_be_changed_in_place(
    store: ArtifactStore, name: str
) -> None:
    arr = ARRAYS[name]
    ref = store.put(arr)
    assert ref.serializer == "npy"
    back = store.get(ref)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    assert back.flags.f_contiguous == arr.flags.f_contiguous
    np.testing.assert_array_equal(back, arr)
    if back.size:
        back.flat[0] = back.flat[-1]  # a private mapping: the stored file is not changed
    assert store.verify(ref) is None
    np.testing.assert_array_equal(store.get(ref), arr)


@pytest.mark.parametrize(
    "value",
    [big_frame(), big_frame(50).iloc[:, 0], np.arange(300_000), {"k": "v" * 2000}],
    ids=["frame", "series", "array", "json"],
)
def test_the_hash_and_size_are_those_of_the_bytes_on_disk(
    store: ArtifactStore, value: object
) -> None:
    ref = store.put(value)
    path = store.path(ref)
    assert hash_file(path) == ref.hash
    assert path.stat().st_size == ref.size
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == []


def test_an_explicit_parquet_choice_writes_parquet(store: ArtifactStore) -> None:
    df = big_frame(1000)
    ref = store.put(df, "parquet")
    assert (ref.serializer, store.path(ref).suffix) == ("parquet", ".parquet")
    assert store.path(ref).read_bytes()[:4] == b"PAR1"
    pd.testing.assert_frame_equal(store.get(ref), df)
    sref = store.put(df["f"], "parquet")  # a Series asking for Parquet gets its form of it
    assert sref.serializer == "series"
    pd.testing.assert_series_equal(store.get(sref), df["f"])


def test_parquet_artifacts_written_before_arrow_ipc_stay_readable(store: ArtifactStore) -> None:
    saved = json.loads((OLD / "refs.json").read_text())
    refs = {k: ArtifactRef.from_json(v) for k, v in saved.items()}
    for ref in refs.values():
        dest = store.path(ref)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(OLD / dest.name, dest)
    frame = store.get(refs["frame"])
    assert frame.index.name == "id" and list(frame.index) == [10, 11, 12, 13, 14, 15]
    assert frame["x"].dtype == "int32" and np.isnan(frame["f"].iloc[1])
    assert list(frame["c"].cat.categories) == ["c", "b", "a"] and frame["c"].cat.ordered
    assert str(frame["t"].dt.tz) == "Europe/Berlin" and frame["o"].dtype == object
    series = store.get(refs["series"])
    assert series.name == ("a", 1) and series.iloc[1] == 2.5


@pytest.mark.parametrize("value", [FRAMES["small"], big_frame(), ARRAYS["large (mapped)"]])
def test_a_corrupt_arrow_or_npy_file_is_refused_on_read(
    store: ArtifactStore, value: object
) -> None:
    ref = store.put(value)
    path = store.path(ref)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=rf"artifact {ref.hash[:12]} is corrupt"):
        store.get(ref)


def test_a_store_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the artifact folder should be")
    with pytest.raises(ArtifactError) as exc:
        ArtifactStore(blocked).put(big_frame(1000))
    assert str(exc.value).startswith(
        f"cannot write a pandas:DataFrame artifact under {blocked}: "
    ), exc.value


def test_loads_counts_values_decoded_from_files(store: ArtifactStore) -> None:
    ref = store.put([1, 2])
    assert store.loads == 0
    store.get(ref)
    store.read_bytes(ref)  # raw bytes (previews, export) are not a decoded value
    assert store.loads == 1


@pytest.mark.parametrize("rows", [50, 200_000], ids=["read", "mapped"])
def test_a_loaded_frame_can_be_changed_in_place(store: ArtifactStore, rows: int) -> None:
    df = big_frame(rows)
    ref = store.put(df)
    back = store.get(ref)
    for col in back.columns:  # every column, categoricals too, takes a write
        back.iloc[0, back.columns.get_loc(col)] = back.iloc[1, back.columns.get_loc(col)]
    back["f"] *= 2
    assert back["f"].iloc[2] == df["f"].iloc[2] * 2
    assert store.verify(ref) is None  # the stored file is untouched
    pd.testing.assert_frame_equal(store.get(ref), df)
