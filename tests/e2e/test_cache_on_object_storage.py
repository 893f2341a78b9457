"""The cache with its artifacts in object storage: `ORCH_ARTIFACTS=s3://bucket/prefix`.

Every test here runs the real CLI against a fresh bucket of the test S3 server (moto's,
started by scripts/start-s3.sh). A chosen part of the local cache suite runs again here
(the tests imported below: the store's part of a hit, and every serializer through
the thread and process executors; the cache keys' logic does not depend on the store);
then what only object storage has: a corrupt or deleted object
recomputed, gc of objects, a writer killed mid-upload, credentials kept out of all text.
The whole cache suite runs on object storage with `ORCH_TEST_ARTIFACTS=s3`.
"""

from __future__ import annotations

import signal
import time

import pytest
from orchtest import DEMO_STEPS, Orch, Project, states, step_of, wait_for
from test_cache_reuse import (  # noqa: F401 - collected again, on object storage
    test_first_run_succeeds_second_is_cached,
    test_unchanged_output_stops_recomputation_downstream,
)
from test_cache_types import (  # noqa: F401
    test_a_frame_its_format_would_change_is_refused_with_one_clear_error,
    test_cached_values_have_the_types_of_fresh_ones,
)

pytestmark = pytest.mark.object_store

# outputs over the inline limit, so the demo's lists are objects (its scalars stay inline)
BIG = ("--param", "n=400")


def _key_of(orch: Orch, hash_: str) -> str:
    [key] = [k for k in orch.bucket.keys() if k.rsplit("/", 1)[-1].startswith(hash_)]
    return key


def _get(orch: Orch, key: str) -> bytes:
    return orch.bucket.client.get_object(Bucket=orch.bucket.name, Key=key)["Body"].read()


def _put(orch: Orch, key: str, data: bytes) -> None:
    orch.bucket.client.put_object(Bucket=orch.bucket.name, Key=key, Body=data)


def test_artifacts_are_objects_under_the_prefix(orch: Orch, demo_project: Project) -> None:
    run = orch.run("pipe.py:demo", *BIG)
    keys = orch.bucket.keys()
    assert keys and all(k.startswith("artifacts/") for k in keys), keys
    out = step_of(run, "double")["outputs"][0]
    assert _key_of(orch, out["hash"]) == f"artifacts/{out['hash'][:2]}/{out['hash']}.json"
    assert not orch.artifacts.exists()  # nothing went to the local default folder


@pytest.mark.parametrize("damage", ["garbage", "deleted"])
def test_a_corrupt_or_deleted_object_is_recomputed(
    orch: Orch, demo_project: Project, damage: str
) -> None:
    out = step_of(orch.run("pipe.py:demo", *BIG), "double")["outputs"][0]
    key = _key_of(orch, out["hash"])
    original = _get(orch, key)
    if damage == "garbage":
        _put(orch, key, bytes(b ^ 0x5A for b in original))  # same size, every byte flipped
    else:
        orch.bucket.client.delete_object(Bucket=orch.bucket.name, Key=key)

    run = orch.run("pipe.py:demo", *BIG)
    st = states(run)
    assert st["double"] == "succeeded" and st["load"] == "cached" and st["total"] == "cached"
    reason = step_of(run, "double")["reason"]
    word = "corrupt" if damage == "garbage" else "missing"
    assert word in reason and f"s3://{orch.bucket.name}/{key}" in reason, reason
    assert _get(orch, key) == original  # the recomputation put the right bytes back
    assert states(orch.run("pipe.py:demo", *BIG)) == dict.fromkeys(DEMO_STEPS, "cached")


def test_a_step_in_another_process_reads_inputs_from_object_storage(
    orch: Orch, demo_project: Project
) -> None:
    orch.run("pipe.py:demo", *BIG, "--executor", "process")
    load_out = step_of(orch.run("pipe.py:demo", *BIG), "load")["outputs"][0]
    key = _key_of(orch, load_out["hash"])
    good = _get(orch, key)
    _put(orch, key, bytes(b ^ 0x5A for b in good))
    run = orch.run("pipe.py:demo", *BIG, "--executor", "process", "--param", "k=7")
    assert states(run)["load"] == "succeeded" and "corrupt" in step_of(run, "load")["reason"]
    assert _get(orch, key) == good


def test_gc_deletes_unreferenced_objects_and_keeps_referenced_ones(
    orch: Orch, demo_project: Project
) -> None:
    orch.run("pipe.py:demo", *BIG)
    referenced = orch.bucket.keys()
    orphan = "artifacts/ab/ab" + "0" * 30 + ".json"
    foreign = "artifacts/notes.txt"  # not an artifact's name: never ours to delete
    _put(orch, orphan, b"[1, 2]")
    _put(orch, foreign, b"hello")

    young = orch("cache", "gc")  # the default grace period keeps a fresh orphan
    assert young.code == 0, young.describe()
    assert orphan in orch.bucket.keys() and "younger than" in young.out

    res = orch("cache", "gc", "--grace", "0")
    assert res.code == 0, res.describe()
    assert "removed 1 of" in res.out, res.out
    assert orch.bucket.keys() == sorted([*referenced, foreign])
    assert states(orch.run("pipe.py:demo", *BIG)) == dict.fromkeys(DEMO_STEPS, "cached")


BIG_PIPELINE = """
import numpy as np

from orchestrator import pipeline, step


@step
def big(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64)


@step
def total(a: np.ndarray) -> float:
    return float(a.sum())


@pipeline
def bigpipe(n: int = 20_000_000):
    return total(big(n))
"""


def _uploads(orch: Orch) -> list[dict]:
    got = orch.bucket.client.list_multipart_uploads(Bucket=orch.bucket.name)
    return got.get("Uploads", [])


def test_a_writer_killed_mid_upload_leaves_nothing_under_the_final_name(
    orch: Orch, project: Project, tmp_path
) -> None:
    """A 160 MB array goes up in parts: the runner is SIGKILLed once the upload has begun.
    No object appears; the re-run recomputes the step; gc aborts the unfinished upload."""
    project.write("big.py", BIG_PIPELINE)
    proc = orch.popen("run", "big.py:bigpipe", "--json", log=tmp_path / "killed")
    try:
        wait_for(lambda: _uploads(orch) or proc.poll() is not None, "the upload to begin", 120)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before its upload was killed"
    assert _uploads(orch), "no unfinished upload was left"
    assert not [k for k in orch.bucket.keys() if k.endswith(".npy")], orch.bucket.keys()

    run = orch.run("big.py:bigpipe")
    assert states(run) == {"big": "succeeded", "total": "succeeded"}
    out = step_of(run, "big")["outputs"][0]
    assert _key_of(orch, out["hash"]).endswith(".npy")
    time.sleep(1.1)  # the upload's start time has a resolution of one second
    res = orch("cache", "gc", "--grace", "1s")
    assert res.code == 0, res.describe()
    assert "temporary file of interrupted writes" in res.out, res.out
    assert _uploads(orch) == []
    assert states(orch.run("big.py:bigpipe")) == {"big": "cached", "total": "cached"}


def test_credentials_appear_in_no_output_nor_log(orch: Orch, demo_project: Project) -> None:
    orch.env["ORCH_LOG_FORMAT"] = "json"
    secrets = [orch.env["AWS_SECRET_ACCESS_KEY"], orch.env["AWS_ACCESS_KEY_ID"]]
    texts = []
    run = orch.run("pipe.py:demo", *BIG)
    texts.append(orch("show", run["run_id"], "--json").out)
    texts.append(orch("artifact", run["run_id"], "double").out)

    # failures: a bucket that does not exist, then an endpoint nothing answers on
    orch.env["ORCH_ARTIFACTS"] = "s3://no-such-bucket-here/artifacts"
    missing = orch("run", "pipe.py:demo", *BIG)
    assert missing.code != 0 and "Traceback" not in missing.err, missing.describe()
    assert "no-such-bucket-here" in missing.out + missing.err, missing.describe()
    orch.env["ORCH_ARTIFACTS"] = orch.bucket.url
    orch.env["ORCH_S3_ENDPOINT"] = "http://127.0.0.1:9"
    orch.env["AWS_MAX_ATTEMPTS"] = "1"
    down = orch("run", "pipe.py:demo", *BIG, "--param", "n=401")
    assert down.code != 0 and "Traceback" not in down.err, down.describe()
    for res in (missing, down):
        texts += [res.out, res.err]
    texts += [p.read_text(errors="replace") for p in orch.home.rglob("*.log") if p.is_file()]
    texts.append(orch("show", "--json", orch.runs()[0]["run_id"]).out)
    blob = "\n".join(texts)
    assert "127.0.0.1:9" in blob  # the errors were there to be read
    for secret in secrets:
        assert secret not in blob


def test_artifact_export_and_show_download_the_object(
    orch: Orch, demo_project: Project, tmp_path
) -> None:
    run = orch.run("pipe.py:demo", *BIG)
    shown = orch("artifact", run["run_id"], "double")
    assert shown.code == 0 and "[2,4,6,8,10," in "".join(shown.out.split()), shown.describe()
    target = tmp_path / "double.bin"
    res = orch("artifact", run["run_id"], "double", "--to", str(target))
    assert res.code == 0, res.describe()
    out = step_of(run, "double")["outputs"][0]
    assert target.read_bytes() == _get(orch, _key_of(orch, out["hash"]))

    _put(orch, _key_of(orch, out["hash"]), b"[0]")
    bad = orch("artifact", run["run_id"], "double", "--to", str(tmp_path / "bad.bin"))
    assert bad.code != 0 and "corrupt" in bad.out + bad.err, bad.describe()
    assert not (tmp_path / "bad.bin").exists()


def test_dask_workers_open_the_store_from_its_url(orch: Orch, demo_project: Project) -> None:
    """Workers are given the store's s3:// location, never a folder; a local re-run of what
    they stored is all cache hits."""
    run = orch.run("pipe.py:demo", *BIG, "--executor", "dask")
    assert set(states(run).values()) == {"succeeded"}
    assert not orch.artifacts.exists()
    assert states(orch.run("pipe.py:demo", *BIG)) == dict.fromkeys(DEMO_STEPS, "cached")
