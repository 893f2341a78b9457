"""Where the inline threshold comes from: a small artifact as a file, or in two rows.

What it measures
    For JSON values of 16 B to 64 KiB: the time of `ArtifactStore.put` writing a file
    (temporary file, hash, rename; `inline_max=0`), against writing the value's text in
    two SQLite rows (a step run's and a cache entry's, 20 steps per commit, WAL,
    `synchronous=NORMAL`, as the engine does) and reading one back. Below
    `INLINE_LIMIT` the rows cost a few microseconds against ~100 us for the file; above a
    few KiB the rows grow costly, and a mapped step's list row holds every child's value.

How to run
    python bench/inline.py             # under /dev/shm when it exists
    python bench/inline.py --tmp /var/tmp
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from orchestrator.artifacts.store import INLINE_LIMIT, ArtifactStore

N = 2000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tmp", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="orch-inline-", dir=args.tmp))
    try:
        store = ArtifactStore(folder / "artifacts", inline_max=0)
        db = sqlite3.connect(folder / "rows.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
        print(f"{N} values per size under {args.tmp}; INLINE_LIMIT = {INLINE_LIMIT} bytes")
        for size in (16, 256, 1024, 4096, 16384, 65536):
            values = ["x" * size + str(i) for i in range(N)]
            t = time.perf_counter()
            for v in values:
                store.put(v)
            file_us = (time.perf_counter() - t) / N * 1e6
            rows = [(f"{size}-{i}", json.dumps({"inline": v})) for i, v in enumerate(values)]
            t = time.perf_counter()
            for k in range(0, N, 20):
                db.execute("BEGIN")
                for suffix in ("s", "c"):
                    db.executemany(
                        "INSERT INTO t VALUES (?, ?)",
                        [(a + suffix, b) for a, b in rows[k : k + 20]],
                    )
                db.execute("COMMIT")
            rows_us = (time.perf_counter() - t) / N * 1e6
            t = time.perf_counter()
            for a, _ in rows:
                json.loads(db.execute("SELECT v FROM t WHERE k = ?", (a + "c",)).fetchone()[0])
            read_us = (time.perf_counter() - t) / N * 1e6
            print(
                f"  {size:6d} B   file {file_us:7.1f} us   inline: two rows {rows_us:7.1f} us, "
                f"read back {read_us:6.1f} us"
            )
        db.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
