"""Artifact store: one serializer per type, atomic writes, verified reads, no silent pickles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel
from sklearn.linear_model import LogisticRegression

from orchestrator.artifacts.store import ArtifactStore, choose_serializer
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


def test_corrupt_and_missing_artifacts_are_reported(store: ArtifactStore) -> None:
    ref = store.put({"x": 1})
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
    ref = store.put({"x": 1})
    store.path(ref).write_bytes(b"garbage")
    store.put({"x": 1})
    assert store.verify(ref) is None


def test_no_silent_pickle(store: ArtifactStore) -> None:
    class Thing:
        pass

    with pytest.raises(ArtifactError, match="no serializer for a value of type .*Thing"):
        store.put(Thing())
    assert choose_serializer(Thing(), "pickle") == "pickle"
