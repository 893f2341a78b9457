"""Artifact hashing and storage throughput for a large DataFrame (default 512 MiB in memory).

What it measures
    A seeded DataFrame of 8 float64 columns (rows = size / 64 bytes; 8,388,608 rows for
    512 MiB), optionally with an extra string column (`--strings`), then:

    (a) xxh3-128 over the serialized bytes (Arrow IPC, a frame's default format) with
        `orchestrator.cache.hashing.hash_bytes` (the content hash of every artifact); for
        reference, also over the DataFrame's in-memory column buffers;
    (b) serialization (into memory) and deserialization with the `arrow` and `parquet`
        serializers of `orchestrator.artifacts.store.SERIALIZERS`;
    (c) end to end through `ArtifactStore` in a temporary folder:
        `put` (choose serializer + serialize into the file, hashing on the way + rename;
        the file is deleted before each repetition),
        `get` (map + re-hash + deserialize) and `verify` (re-hash the stored file through
        a read-only mapping, as a cache hit does for artifacts of 1 MiB or more).

    Each figure is the best of `--reps` repetitions, printed as seconds and GB/s
    (10^9 bytes per second) over both the in-memory size (`DataFrame.memory_usage(deep=True)`)
    and the serialized size. Reads come from the page cache (the file was just written);
    cold-disk reads are slower. Random normal floats barely compress, so the serialized
    size is close to the in-memory size; real data usually compresses better.

How to run
    python bench/hashing.py                      # 512 MiB of float64 columns
    python bench/hashing.py --strings            # plus one string column
    python bench/hashing.py --size-mb 64 --reps 2   # quick check
    python bench/hashing.py --tmp /dev/shm       # where the artifact store goes

Target: hashing > 1 GB/s. Peak RSS is printed at the end (about 5x the frame size:
2.5 GiB for 512 MiB). Takes about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xxhash

from orchestrator.artifacts.store import SERIALIZERS, ArtifactRef, ArtifactStore
from orchestrator.cache.hashing import hash_bytes

HASH_TARGET_GBS = 1.0
MIB = 1 << 20


def make_frame(size_mb: int, strings: bool, seed: int = 0) -> pd.DataFrame:
    """8 float64 columns totalling `size_mb` MiB, plus an optional string column."""
    rows = size_mb * MIB // (8 * 8)
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"f{k}": rng.standard_normal(rows) for k in range(8)})
    if strings:
        import pyarrow as pa
        import pyarrow.compute as pc

        ids = pa.array(rng.integers(0, 5_000_000, rows))
        df["customer"] = pc.binary_join_element_wise(
            "customer-", pc.cast(ids, pa.string()), ""
        ).to_pandas()
    return df


def best(
    fn: Callable[[], Any], reps: int, before: Callable[[], None] | None = None
) -> tuple[float, Any]:
    """Best wall time of `fn` over `reps` runs, and its last result."""
    times, result = [], None
    for _ in range(reps):
        if before is not None:
            before()
        result = None
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def serialized(df: pd.DataFrame, name: str) -> memoryview:
    buf = io.BytesIO()
    SERIALIZERS[name][1](df, buf)
    return buf.getbuffer()


def serializer_figures(df: pd.DataFrame, reps: int, name: str = "arrow") -> dict[str, Any]:
    """(a) and (b): serialize, hash the bytes, hash the raw columns, deserialize."""
    loads = SERIALIZERS[name][2]
    t_ser, data = best(lambda: serialized(df, name), reps)
    t_hash, digest = best(lambda: hash_bytes(data), max(reps, 5))
    t_load, back = best(lambda: loads(data, "pandas:DataFrame"), reps)
    assert back.shape == df.shape
    floats = [np.ascontiguousarray(df[c].to_numpy()) for c in df.columns if df[c].dtype.kind == "f"]

    def hash_columns() -> str:
        h = xxhash.xxh3_128()
        for values in floats:
            h.update(memoryview(values).cast("B"))
        return h.hexdigest()

    t_raw, _ = best(hash_columns, max(reps, 5))
    return {
        "size": len(data),
        "serialize": t_ser,
        "hash": t_hash,
        "deserialize": t_load,
        "digest": digest,
        "hash_columns": t_raw,
        "float_bytes": sum(v.nbytes for v in floats),
    }


def time_write(store: ArtifactStore, ref: ArtifactRef, reps: int) -> float:
    """Best time of writing the stored artifact's bytes to a new file (the floor of `put`)."""
    data, path = store.read_bytes(ref), store.root / "plain-write"
    t, _ = best(lambda: path.write_bytes(data), reps, before=lambda: path.unlink(missing_ok=True))
    return t


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / MIB


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--size-mb",
        type=int,
        default=512,
        help="in-memory size of the float columns, MiB (default 512)",
    )
    ap.add_argument("--strings", action="store_true", help="add a string column")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per figure (default 3)")
    ap.add_argument("--tmp", default=None, help="parent folder for the artifact store")
    args = ap.parse_args(argv)
    reps = max(1, args.reps)

    t_start = time.perf_counter()
    df = make_frame(args.size_mb, args.strings)
    mem = int(df.memory_usage(deep=True).sum())
    print(
        f"python {platform.python_version()}, pandas {pd.__version__}, xxhash {xxhash.VERSION}, "
        f"{os.cpu_count()} CPUs; best of {reps}"
    )
    print(
        f"DataFrame: {len(df):,} rows x {df.shape[1]} columns "
        f"({', '.join(sorted({str(t) for t in df.dtypes}))}), in memory {mem / 1e6:,.1f} MB "
        f"({mem / MIB:,.1f} MiB); built in {time.perf_counter() - t_start:.1f} s\n"
    )

    f = serializer_figures(df, reps)
    pq = serializer_figures(df, reps, "parquet")
    ser = f["size"]
    rows: list[tuple[str, float, int]] = [
        ("(a) xxh3-128 hash_bytes over serialized bytes", f["hash"], ser),
        ("(b) arrow serialize (serializer 'arrow' dump)", f["serialize"], ser),
        ("(b) arrow deserialize (serializer 'arrow' load)", f["deserialize"], ser),
        ("(b) parquet serialize (serializer 'parquet' dump)", pq["serialize"], pq["size"]),
        ("(b) parquet deserialize (serializer 'parquet' load)", pq["deserialize"], pq["size"]),
    ]
    gc.collect()

    parent = args.tmp or tempfile.gettempdir()
    root = Path(tempfile.mkdtemp(prefix="orch-bench-hash-", dir=parent))
    try:
        store = ArtifactStore(root / "artifacts")
        ref = store.put(df)
        path = store.path(ref)

        def remove() -> None:
            path.unlink(missing_ok=True)

        t_put, ref2 = best(lambda: store.put(df), reps, before=remove)
        assert ref2 == ref and ref.hash == f["digest"], "content hash is not deterministic"
        rows.append(("(c) ArtifactStore.put (serialize + hash + write)", t_put, ser))
        t_get, back = best(lambda: store.get(ref), reps)
        assert back.shape == df.shape
        del back
        rows.append(("(c) ArtifactStore.get (read + hash + deserialize)", t_get, ser))
        t_verify, problem = best(lambda: store.verify(ref), max(reps, 5))
        assert problem is None, problem
        rows.append(("(c) ArtifactStore.verify (re-hash the stored file)", t_verify, ser))
        t_write = time_write(store, ref, reps)
        rows.append(("(c) writing the same bytes to a file, for reference", t_write, ser))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"serialized (arrow): {ser / 1e6:,.1f} MB ({ser / MIB:,.1f} MiB), "
        f"{ser / mem:.0%} of in-memory; artifact store under {parent}"
    )
    head = f"{'operation':<58}{'seconds':>9}{'GB/s in-memory':>16}{'GB/s serialized':>17}"
    print(head)
    print("-" * len(head))
    for label, secs, size in rows:
        flag = ""
        if label.startswith("(a)"):
            flag = "  ok" if size / secs / 1e9 > HASH_TARGET_GBS else "  MISS"
        print(f"{label:<58}{secs:>9.3f}{mem / secs / 1e9:>16.2f}{size / secs / 1e9:>17.2f}{flag}")
    t_raw = f["hash_columns"]
    print(
        f"{'    reference: xxh3-128 over the in-memory float columns':<58}{t_raw:>9.3f}"
        f"{f['float_bytes'] / t_raw / 1e9:>16.2f}{'':>17}"
    )
    print(
        f"\ntarget: hashing > {HASH_TARGET_GBS} GB/s; peak RSS {peak_rss_mb():,.0f} MiB; "
        f"total {time.perf_counter() - t_start:.1f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
