"""Artifact store: one serializer per type, atomic writes, verified reads, no silent pickles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel
from sklearn.linear_model import LogisticRegression

from orchestrator.artifacts.store import INLINE_LIMIT, ArtifactRef, ArtifactStore, choose_serializer
from orchestrator.errors import ArtifactError


class Report(BaseModel):
    score: float
    names: list[str]


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


@pytest.mark.parametrize(
    ("value", "serializer"),
    [
        (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "arrow"),
        (pd.Series([1.5, 2.5], name="s"), "arrow_series"),
        (np.arange(6).reshape(2, 3), "npy"),
        (Report(score=0.5, names=["a"]), "pydantic"),
        ({"k": [1, 2, None]}, "json"),
        (None, "json"),
        (LogisticRegression(C=0.3), "joblib"),
    ],
)
def test_round_trip_by_type(store: ArtifactStore, value: object, serializer: str) -> None:
    ref = store.put(value)
    assert ref.serializer == serializer
    back = store.get(ref)
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(back, value)
    elif isinstance(value, pd.Series):
        pd.testing.assert_series_equal(back, value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(back, value)
    elif isinstance(value, LogisticRegression):
        assert back.get_params() == value.get_params()
    else:
        assert back == value


def test_same_content_same_hash_one_file(store: ArtifactStore) -> None:
    a = store.put(pd.DataFrame({"a": [1, 2]}))
    b = store.put(pd.DataFrame({"a": [1, 2]}))
    assert a == b
    assert len(store.all_files()) == 1
    assert not list(store.root.glob("*/.tmp-*"))


LARGE = {"x": "y" * 2000}  # above INLINE_MAX: a file


def test_corrupt_and_missing_artifacts_are_reported(store: ArtifactStore) -> None:
    ref = store.put(LARGE)
    path = store.path(ref)
    path.write_bytes(b'{"x":2}')
    assert "corrupt" in (store.verify(ref) or "")
    with pytest.raises(ArtifactError, match="corrupt"):
        store.get(ref)
    path.unlink()
    assert "missing" in (store.verify(ref) or "")
    with pytest.raises(ArtifactError, match="missing"):
        store.get(ref)


def test_rewrite_repairs_a_corrupt_file(store: ArtifactStore) -> None:
    ref = store.put(LARGE)
    store.path(ref).write_bytes(b"garbage")
    store.put(LARGE)
    assert store.verify(ref) is None


def test_a_small_json_value_is_inline_and_checked_on_read(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a", inline_max=INLINE_LIMIT)
    ref = store.put({"x": 1})
    assert ref.data is not None and store.all_files() == []
    back = ArtifactRef.from_json(ref.to_json())
    assert back == ref and store.get(back) == {"x": 1} and store.verify(back) is None
    as_file = ArtifactStore(store.root / "files", inline_max=0).put({"x": 1})
    assert as_file.hash == ref.hash and as_file.data is None  # the same content hash
    bad = ArtifactRef.from_json(ref.to_json() | {"inline": '{"x":2}'})
    expected = f"artifact {ref.hash[:12]} is corrupt (content hash differs): its inline value"
    assert (store.verify(bad) or "").startswith(expected)
    with pytest.raises(ArtifactError, match="is corrupt"):
        store.get(bad)
    with pytest.raises(ArtifactError, match="stored inline in the metadata store, not as a file"):
        store.path(ref)


def test_values_above_the_threshold_and_tracked_ones_are_files(tmp_path: Path) -> None:
    assert ArtifactStore(tmp_path / "on").put({"x": 1}).data is not None  # on by default
    assert ArtifactStore(tmp_path / "off", inline_max=0).put({"x": 1}).data is None
    store = ArtifactStore(tmp_path / "a")
    assert store.inline_max == INLINE_LIMIT
    assert store.put("v" * INLINE_LIMIT).data is None  # its JSON has two quotes more
    assert store.put("v" * (INLINE_LIMIT - 2)).data is not None
    found_by_hash = store.put({"x": 1}, inline=False)
    assert found_by_hash.data is None and store.verify(found_by_hash) is None


def test_no_silent_pickle(store: ArtifactStore) -> None:
    class Thing:
        pass

    with pytest.raises(ArtifactError, match="no serializer for a value of type .*Thing"):
        store.put(Thing())
    assert choose_serializer(Thing(), "pickle") == "pickle"
