"""The object store (`ObjectArtifactStore`) in-process, against the real test S3 server:
the same refs and checks as a local store, one clear error for every bad location."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.artifacts.location import open_artifacts
from orchestrator.artifacts.objects import ObjectArtifactStore, scrub
from orchestrator.artifacts.store import ArtifactRef, ArtifactStore
from orchestrator.config import Workspace
from orchestrator.errors import ArtifactError


def test_a_location_opens_the_store_it_names(tmp_path: Path) -> None:
    assert type(open_artifacts(tmp_path / "a")) is ArtifactStore
    assert type(open_artifacts(str(tmp_path / "a"))) is ArtifactStore
    s3 = open_artifacts("s3://bucket/some/prefix/")
    assert isinstance(s3, ObjectArtifactStore) and s3.location == "s3://bucket/some/prefix"
    ws = Workspace(home=tmp_path, artifacts="s3://bucket/p")
    assert isinstance(ws.artifacts, ObjectArtifactStore)
    assert Workspace(home=tmp_path).artifacts.location == str(tmp_path / "artifacts")


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3://b/p?x=1"])
def test_a_bad_url_is_one_clear_error(url: str) -> None:
    with pytest.raises(ArtifactError, match="ORCH_ARTIFACTS"):
        open_artifacts(url)


def test_a_folder_is_refused_by_name() -> None:
    store = open_artifacts("s3://bucket/p")
    with pytest.raises(ArtifactError, match="s3://bucket/p is object storage, not a folder"):
        _ = store.root


def test_values_round_trip_and_are_verified(s3_bucket) -> None:
    store = open_artifacts(s3_bucket.url, inline_max=0)
    small, big = store.put({"a": (1, 2)}), store.put(np.arange(400_000))  # big: mapped read
    both = ArtifactRef.collect([small, big])
    assert store.verify(both) is None
    values = store.get(both)
    assert values[0] == {"a": (1, 2)} and values[1].sum() == np.arange(400_000).sum()
    values[1][0] = 7  # a private mapping: writable, the object unchanged
    assert store.verify(big) is None
    assert store.where(big) == f"{s3_bucket.url}/{big.hash[:2]}/{big.hash}.npy"
    assert store.put(np.arange(400_000)) == big  # the same content is the same object
    assert len(s3_bucket.keys()) == 2

    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=store.key(big), Body=b"x" * big.size)
    with pytest.raises(ArtifactError, match=f"corrupt .*{store.where(big)}"):
        store.get(big)
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=store.key(small))
    assert store.verify(both) == f"artifact {small.hash[:12]} is missing: {store.where(small)}"


def test_inline_values_need_no_object(s3_bucket) -> None:
    store = open_artifacts(s3_bucket.url, inline_max=1024)
    ref = store.put([1, 2, 3])
    assert ref.data is not None and store.get(ref) == [1, 2, 3] and s3_bucket.keys() == []


def test_adopt_uploads_a_checked_file(s3_bucket, tmp_path: Path) -> None:
    local = ArtifactStore(tmp_path / "out", inline_max=0)
    ref = local.put({"k": 1})
    store = open_artifacts(s3_bucket.url, inline_max=0)
    store.adopt(local.path(ref), ref)
    assert store.get(ref) == {"k": 1}
    local.path(ref).write_bytes(b"{}")
    with pytest.raises(ArtifactError, match="does not match its hash"):
        store.adopt(local.path(ref), ref)


def test_errors_name_the_bucket_and_never_a_secret(s3_bucket, monkeypatch) -> None:
    store = open_artifacts(f"s3://no-such-bucket-{s3_bucket.name[-8:]}/p", inline_max=0)
    with pytest.raises(ArtifactError, match="bucket 'no-such-bucket-.*' does not exist"):
        store.put({"a": 1})
    secret = s3_bucket.env["AWS_SECRET_ACCESS_KEY"]
    assert scrub(f"signature for {secret} failed") == "signature for *** failed"
    monkeypatch.setenv("ORCH_S3_ENDPOINT", f"http://{secret}.invalid:1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ArtifactError) as err:
        open_artifacts(s3_bucket.url, inline_max=0).put({"a": 1})
    assert secret not in str(err.value) and "***" in str(err.value)


def test_ui_previews_read_objects(s3_bucket, monkeypatch) -> None:
    import pandas as pd

    from orchestrator.ui import previews

    store = open_artifacts(s3_bucket.url, inline_max=0)
    frame = pd.DataFrame({"x": range(50), "y": [f"r{i}" for i in range(50)]})
    small, text = store.put(frame), store.put({"k": [1, 2]})
    shown = previews.preview(store, small.to_json())
    assert shown is not None and shown["shape"] == [50, 2] and shown["rows"][0] == ["0", "r0"]
    assert '"k"' in previews.preview(store, text.to_json())["text"]
    monkeypatch.setattr(previews, "VERIFY_LIMIT", 10)  # "large": read from a downloaded copy
    big = previews.preview(store, small.to_json())
    assert big["shape"] == [50, 2] and "first batch" in big["note"]


def test_gc_listing_and_removal(s3_bucket) -> None:
    store = open_artifacts(s3_bucket.url, inline_max=0)
    refs = [store.put(i) for i in range(5)]
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="artifacts/README", Body=b"x")
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="elsewhere/ab/ab1.json", Body=b"1")
    listed = store.listing()
    assert sorted(o.hash for o in listed) == sorted(r.hash for r in refs)
    assert all(o.size == r.size for o in listed for r in refs if r.hash == o.hash)
    store.remove([o for o in listed if o.hash != refs[0].hash])
    assert [o.hash for o in store.listing()] == [refs[0].hash]
    assert s3_bucket.keys() == sorted(
        ["artifacts/README", "elsewhere/ab/ab1.json", store.key(refs[0])]
    )
