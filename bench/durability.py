"""SIGKILL trial: kill `orch run` at random moments; no finished step lost, no wrong result.

What it does
    A pipeline of frame steps (make a frame from a seed, clean it, add features, map a
    summary over its segments, total) runs as a real `orch run` process on one metadata
    store (SQLite, or with `--store postgresql` a fresh PostgreSQL database, whose rounds
    the engine sends without waiting for their answers) and artifact folder, `--kills`
    times (default 100), each killed with SIGKILL after a random delay (seeded). After
    each kill, every step row the store records as finished (succeeded or cached) is
    checked: each artifact it names must be present with its content hash (a "lost" step
    otherwise), and each step it reads must be recorded finished in the same run (a step
    recorded "ahead" of its inputs' record otherwise). At the end every seed is run to
    completion and its result compared with the same computation in plain Python (a
    "wrong" result otherwise), and one more run of each seed must be all cache hits.

How to run
    python bench/durability.py                 # 100 kills
    python bench/durability.py --kills 20      # a quick check
    python bench/durability.py --store postgresql   # PostgreSQL as bench/store.py finds it

It prints the number of kills, of finished steps checked, of lost steps, of steps
recorded ahead of their inputs and of wrong results; the last three must be 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

PIPELINE = textwrap.dedent(
    """
    import time

    import numpy as np
    import pandas as pd

    from orchestrator import pipeline, step


    @step(kind="ingest")
    def make(seed: int = 0, rows: int = 200_000) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame({"a": rng.normal(size=rows), "seg": rng.integers(0, 4, rows)})


    @step(kind="validate")
    def clean(df: pd.DataFrame) -> pd.DataFrame:
        time.sleep(0.05)
        return df[df["a"].abs() < 3].reset_index(drop=True)


    @step(kind="feature")
    def features(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(b=df["a"] ** 2)


    @step
    def segments(df: pd.DataFrame) -> list[int]:
        return sorted(int(s) for s in df["seg"].unique())


    @step
    def summary(seg: int, df: pd.DataFrame) -> float:
        time.sleep(0.02)
        return float(df.loc[df["seg"] == seg, "b"].sum())


    @step(kind="evaluate")
    def total(parts: list[float]) -> float:
        return round(sum(parts), 6)


    @pipeline
    def chain(seed: int = 0):
        X = features(clean(make(seed=seed)))
        return total(summary.map(seg=segments(X), df=X))
    """
)


# the steps each step of PIPELINE reads (a mapped step's children read what it reads)
PARENTS = {"make": set(), "clean": {"make"}, "features": {"clean"}, "segments": {"features"},
           "summary": {"segments", "features"}, "total": {"summary"}}  # fmt: skip


def expected(seed: int, rows: int = 200_000) -> float:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=rows), "seg": rng.integers(0, 4, rows)})
    df = df[df["a"].abs() < 3].reset_index(drop=True)
    df = df.assign(b=df["a"] ** 2)
    parts = [float(df.loc[df["seg"] == s, "b"].sum()) for s in sorted(df["seg"].unique())]
    return round(sum(parts), 6)


def orch(home: Path, cwd: Path, db_url: str, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["ORCH_HOME"] = str(home)
    env["ORCH_DB_URL"] = db_url
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def finished_lost_ahead(home: Path, db_url: str) -> tuple[int, int, int]:
    from orchestrator.artifacts.store import ArtifactRef, ArtifactStore
    from orchestrator.store.metadata import MetadataStore

    store = MetadataStore(db_url)
    artifacts = ArtifactStore(home / "artifacts")
    finished = lost = ahead = 0
    try:
        for run in store.list_runs(limit=10_000):
            rows = [r for r in store.step_runs(run["id"]) if r["state"] in ("succeeded", "cached")]
            done = {r["name"] for r in rows}
            for row in rows:
                finished += 1
                refs = [ArtifactRef.from_json(o) for o in row["outputs"] or []]
                if not refs or any(artifacts.verify(r) is not None for r in refs):
                    lost += 1
                if not PARENTS[row["name"].split("[")[0]] <= done:
                    ahead += 1
    finally:
        store.close()
    return finished, lost, ahead


@contextlib.contextmanager
def metadata_url(kind: str, home: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{home}/orchestrator.db"
        return
    from store import pg_base_url, scratch_pg  # bench/store.py

    with scratch_pg(pg_base_url()) as url:
        yield url


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max-delay", type=float, default=10.0)
    ap.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = ap.parse_args(argv)
    rnd = random.Random(7)
    with (
        tempfile.TemporaryDirectory(prefix="orch-kill-") as tmp,
        metadata_url(args.store, Path(tmp) / "home") as db_url,
    ):
        root = Path(tmp)
        (root / "flow.py").write_text(PIPELINE)
        home = root / "home"
        t0 = time.perf_counter()
        finished = lost = ahead = 0
        for i in range(args.kills):
            seed = i % args.seeds
            proc = orch(home, root, db_url, "run", "flow.py:chain", "--param", f"seed={seed}")
            time.sleep(rnd.uniform(1.0, args.max_delay))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if home.exists():
                f, lo, ah = finished_lost_ahead(home, db_url)
                finished, lost, ahead = max(finished, f), lost + lo, ahead + ah
        wrong = not_cached = 0
        for seed in range(args.seeds):
            for attempt in ("complete", "again"):
                run_args = ("run", "flow.py:chain", "--param", f"seed={seed}", "--json")
                proc = orch(home, root, db_url, *run_args)
                out, _ = proc.communicate()
                doc = json.loads(out)
                total = next(s for s in doc["steps"] if s["name"] == "total")
                if attempt == "again" and {s["state"] for s in doc["steps"]} != {"cached"}:
                    not_cached += 1
                from orchestrator.artifacts.store import ArtifactRef, ArtifactStore

                value = ArtifactStore(home / "artifacts").get(
                    ArtifactRef.from_json(total["outputs"][0])
                )
                if doc["status"] != "succeeded" or value != expected(seed):
                    wrong += 1
        took = time.perf_counter() - t0
    print(
        f"SIGKILL trial on {args.store}: {args.kills} kills of `orch run` at random moments, "
        f"{took:.0f} s"
    )
    print(f"  finished step rows checked (the most seen at once): {finished}")
    print(f"  finished steps lost (an artifact missing or corrupt): {lost}   (must be 0)")
    print(f"  steps recorded ahead of their inputs' record: {ahead}   (must be 0)")
    print(f"  wrong results after completing each seed: {wrong}   (must be 0)")
    print(f"  seeds whose next run was not all cache hits: {not_cached}   (must be 0)")


if __name__ == "__main__":
    main()
