"""The artifact store in object storage (`s3://`) beside a local folder, in one run.

What it measures
    1. Per-step overhead, in milliseconds per step: the wall time of `Engine.run` over a
       chain of no-op steps (bench/overhead.py's, each with its own cache key and
       artifact) divided by the number of steps, once with small outputs inline (the
       default: no object at all) and once with every output a file (`inline_max=0`: an
       object each, as frames and models are), with the metadata store on SQLite and
       the artifact store a local folder or a bucket of the S3 server. Phases: a first
       run (every output written: spooled, hashed, PUT) and a cached re-run (every
       output verified: GET and re-hashed). Best (and median) of `--reps`, each on a
       fresh store and bucket.
    2. Throughput on one large frame (512 MiB of float64 columns by default), in MB/s:
       `put` (serialize + hash + write: locally to the folder, to S3 through a spool file
       and a multipart upload), its parts measured alone (hashing the Arrow bytes in
       memory; uploading the spooled file), and `get` (download or map, re-hash, decode).

    The S3 server is moto's (scripts/start-s3.sh, on loopback): it keeps objects in its
    own process, so these figures are this machine's CPU and loopback, a floor for the
    per-request cost, not a real object store's network.

How to run
    python bench/object_store.py              # chain of 100, 512 MiB frame, 3 reps
    python bench/object_store.py --quick      # chain of 20, 64 MiB frame, 2 reps
    python bench/object_store.py --mib 256 --steps 200
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import chain_spec, check  # noqa: E402

from orchestrator.artifacts.location import open_artifacts  # noqa: E402
from orchestrator.artifacts.store import ArtifactStore, _HashingFile  # noqa: E402
from orchestrator.cache.hashing import hash_bytes  # noqa: E402
from orchestrator.engine.loop import Engine  # noqa: E402
from orchestrator.execution.local import make_executor  # noqa: E402
from orchestrator.model.pipeline import Pipeline  # noqa: E402
from orchestrator.state import StepState  # noqa: E402
from orchestrator.store.metadata import MetadataStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def s3_endpoint() -> str:
    env = {**os.environ, "ORCH_S3_PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "start-s3.sh")], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(f"scripts/start-s3.sh failed:\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


class Buckets:
    """Fresh buckets on the server, emptied and deleted at the end."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        os.environ["ORCH_S3_ENDPOINT"] = endpoint
        self.client = boto3.client("s3", endpoint_url=endpoint)
        self.made: list[str] = []

    def new(self) -> str:
        name = f"orch-bench-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        self.made.append(name)
        return f"s3://{name}/artifacts"

    def close(self) -> None:
        for name in self.made:
            for up in self.client.list_multipart_uploads(Bucket=name).get("Uploads", []):
                self.client.abort_multipart_upload(
                    Bucket=name, Key=up["Key"], UploadId=up["UploadId"]
                )
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=name)
            for page in pages:
                for obj in page.get("Contents", []):
                    self.client.delete_object(Bucket=name, Key=obj["Key"])
            self.client.delete_bucket(Bucket=name)


# -- 1. per-step overhead -------------------------------------------------------------------


def per_step(
    steps: int, reps: int, location: Callable[[Path], str], inline_max: int | None = None
) -> list[list[float]]:
    """Seconds per phase (first run, cached re-run) for each repetition; `inline_max=0`
    makes every output a file (an object on S3), as a step's frames and models are."""
    graph = Pipeline.from_spec("chain", chain_spec(steps))
    times: list[list[float]] = [[], []]
    for _ in range(reps):
        tmp = Path(tempfile.mkdtemp(prefix="orch-bench-objects-"))
        try:
            store = MetadataStore(f"sqlite:///{tmp / 'orchestrator.db'}")
            where = location(tmp)
            artifacts = (
                open_artifacts(where) if inline_max is None else open_artifacts(where, inline_max)
            )
            engine = Engine(store, artifacts, lambda name, a=artifacts: make_executor(name, a))
            try:
                for phase, state in enumerate((StepState.SUCCEEDED, StepState.CACHED)):
                    gc.collect()
                    t0 = time.perf_counter()
                    result = engine.run(graph, target="bench", executor="thread")
                    times[phase].append(time.perf_counter() - t0)
                    check(result, steps, state)
            finally:
                engine.close()
                store.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return times


def request_floor(buckets: Buckets, n: int = 40) -> tuple[float, float]:
    """Median ms of one bare 100-byte PUT and GET on the server (boto3, no store)."""
    bucket = buckets.new().split("/")[2]
    c = buckets.client
    puts, gets = [], []
    for i in range(n):
        t0 = time.perf_counter()
        c.put_object(Bucket=bucket, Key=f"floor{i}", Body=b"x" * 100)
        t1 = time.perf_counter()
        c.get_object(Bucket=bucket, Key=f"floor{i}")["Body"].read()
        puts.append(t1 - t0)
        gets.append(time.perf_counter() - t1)
    return statistics.median(puts) * 1e3, statistics.median(gets) * 1e3


def print_per_step(steps: int, reps: int, buckets: Buckets) -> None:
    put_ms, get_ms = request_floor(buckets)
    for inline_max, what in ((None, "small outputs inline"), (0, "every output a file")):
        rows = {
            "local folder": per_step(steps, reps, lambda tmp: str(tmp / "artifacts"), inline_max),
            "s3 (moto)": per_step(steps, reps, lambda tmp: buckets.new(), inline_max),
        }
        print_rows(steps, rows, what)
    print(
        f"the server's own floor, one bare request (boto3, 100 bytes): PUT {put_ms:.2f} ms, "
        f"GET {get_ms:.2f} ms"
    )


def print_rows(steps: int, rows: dict[str, list[list[float]]], what: str) -> None:
    print(f"\nper-step overhead, chain of {steps} no-op steps ({what}), ms per step: best (median)")
    print(f"{'artifacts':<14}{'first run':>22}{'cached re-run':>22}")
    best: dict[str, list[float]] = {}
    for label, times in rows.items():
        cells, best[label] = [], []
        for samples in times:
            ms = [t * 1e3 / steps for t in samples]
            cells.append(f"{min(ms):9.3f} ({statistics.median(ms):8.3f})")
            best[label].append(min(ms))
        print(f"{label:<14}" + "".join(f"{c:>22}" for c in cells))
    local, s3 = best["local folder"], best["s3 (moto)"]
    pairs = list(zip(local, s3, strict=True))
    print(f"{'s3 - local':<14}" + "".join(f"{b - a:>+13.3f} ms/step" for a, b in pairs))
    print(f"{'s3 / local':<14}" + "".join(f"{b / a:>20.1f}x " for a, b in pairs))


# -- 2. throughput on one large frame -----------------------------------------------------------


def frame(mib: int) -> Any:
    import numpy as np
    import pandas as pd

    rows = (mib << 20) // (8 * 8)
    rng = np.random.default_rng(0)
    return pd.DataFrame({f"c{i}": rng.random(rows) for i in range(8)})


def best_of(reps: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def print_throughput(mib: int, reps: int, buckets: Buckets) -> None:
    df = frame(mib)
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-objects-"))
    try:
        local = ArtifactStore(tmp / "artifacts")
        s3 = open_artifacts(buckets.new())
        ref = local.put(df)
        size = ref.size / 1e6
        arrow = local.path(ref).read_bytes()
        spool = tmp / "spool.arrow"
        spool.write_bytes(arrow)

        def upload() -> None:
            s3._upload(spool, ref)  # type: ignore[attr-defined]

        def spool_write() -> None:  # serialize + hash to a local spool file, as s3 put does
            with open(tmp / "spool2", "wb") as f:
                from orchestrator.artifacts.frames import arrow_dump

                arrow_dump(df, _HashingFile(f))

        rows = [
            ("hash (in memory)", best_of(reps, lambda: hash_bytes(arrow)), "-"),
            ("local put", best_of(reps, lambda: local.put(df)), "folder"),
            ("s3: spool+hash", best_of(reps, spool_write), "spool"),
            ("s3: upload", best_of(reps, upload), "PUT parts"),
            ("s3 put", best_of(reps, lambda: s3.put(df)), "spool+PUT"),
            ("local get", best_of(reps, lambda: local.get(ref)), "mmap"),
            ("s3 get", best_of(reps, lambda: s3.get(ref)), "download"),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nthroughput on a {size:.0f} MB frame (Arrow IPC), best of {reps}")
    print(f"{'operation':<20}{'how':<12}{'seconds':>9}{'MB/s':>9}{'vs local put':>14}")
    put = rows[1][1]
    for label, secs, how in rows:
        print(f"{label:<20}{how:<12}{secs:>9.3f}{size / secs:>9.0f}{secs / put:>13.2f}x")
    get = rows[5][1]
    print(f"s3 get / local get: {rows[6][1] / get:.1f}x")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="chain 20, 64 MiB, 2 reps")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--mib", type=int, default=None)
    ap.add_argument("--reps", type=int, default=None)
    args = ap.parse_args(argv)
    steps = args.steps or (20 if args.quick else 100)
    mib = args.mib or (64 if args.quick else 512)
    reps = args.reps or (2 if args.quick else 3)
    buckets = Buckets(s3_endpoint())
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; S3: moto on loopback")
        print_per_step(steps, reps, buckets)
        print_throughput(mib, reps, buckets)
    finally:
        buckets.close()


if __name__ == "__main__":
    main()
