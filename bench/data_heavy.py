"""A data-heavy chain: the cost of caching every large intermediate, beside plain Python.

What it measures
    One chain of four steps: `make` (a 1.5M-row x 15-column frame), `clean` (drop rows
    with a missing value, clip outliers), `features` (three derived columns) and
    `summarise` (a small per-group table). Three large intermediate frames. Each figure
    is the wall time of the chain in a fresh Python process (imports excluded), median
    of `--reps`, and as a ratio to the plain in-memory time:

    * plain, in memory: the four functions called in a row, nothing persisted;
    * plain + Arrow IPC: the same, writing each intermediate as an uncompressed
      Feather v2 file (the floor of persisting them);
    * plain + Parquet/zstd: the same, writing each intermediate as zstd Parquet;
    * project, first run: `Engine.run` on a fresh SQLite store and artifact folder
      (thread executor): every output written, hashed and recorded;
    * project, cached re-run: the same graph again in a new process on that store,
      every step a cache hit (only the last step's small output is there to load).

    Peak RSS is the process's `ru_maxrss` after the chain (plain in memory beside the
    project's first run), counted from the start of the measurement. Each measured
    process first touches and frees `--warm` MiB (default 2048, about what the project's
    run touches with its files): on a virtual machine that backs its memory lazily,
    the first touch of fresh memory is slow, and would otherwise fall on whichever
    measurement found the memory cold. `--warm 0` measures without it.

    With `--against PATH` the project's first and cached runs are measured a second
    time in the same repetitions with another checkout first on `PYTHONPATH` (e.g. the
    version before a change), so before and after are side by side under the same load.
    Each repetition runs every measurement once, in turn, so a burst of load on a shared
    machine falls on all of them alike.

How to run
    python bench/data_heavy.py              # 3 repetitions
    python bench/data_heavy.py --rows 300000 --reps 1   # a quick look
    PYTHONPATH=/path/to/other/checkout python bench/data_heavy.py   # another version
    python bench/data_heavy.py --against /path/to/other/checkout    # both, side by side

Targets on a 2-core machine: first run <= 1.5x in memory, cached <= 0.1 s, peak RSS
<= 1.2x plain Python's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator import pipeline, step

ROWS = 1_500_000


def _make(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cols: dict[str, Any] = {f"f{i}": rng.normal(size=rows) for i in range(11)}
    cols["f0"][rng.integers(0, rows, rows // 100)] = np.nan
    cols |= {f"n{i}": rng.integers(0, 1000, rows) for i in range(3)}
    cols["group"] = pd.Categorical.from_codes(rng.integers(0, 8, rows), list("abcdefgh"))
    return pd.DataFrame(cols)


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    out = df.dropna().reset_index(drop=True)
    floats = [c for c in out.columns if c.startswith("f")]
    out[floats] = out[floats].clip(-3, 3)
    return out


def _features(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(
        ratio=df["f1"] / (df["f2"].abs() + 1),
        total=df["n0"] + df["n1"] + df["n2"],
        score=df["f3"] * 0.3 + df["f4"] * 0.7,
    )


def _summarise(df: pd.DataFrame) -> pd.DataFrame:
    return df.groupby("group", observed=True)[["ratio", "total", "score"]].mean()


@step(kind="ingest")
def make(rows: int = ROWS) -> pd.DataFrame:
    return _make(rows)


@step
def clean(df: pd.DataFrame) -> pd.DataFrame:
    return _clean(df)


@step
def features(df: pd.DataFrame) -> pd.DataFrame:
    return _features(df)


@step
def summarise(df: pd.DataFrame) -> pd.DataFrame:
    return _summarise(df)


@pipeline
def data_heavy(rows: int = ROWS):
    summarise(features(clean(make(rows=rows))))


# -- one measurement, in this process ---------------------------------------------------


def _plain(rows: int, write: Any = None) -> None:
    df = _make(rows)
    for fn in (_clean, _features, _summarise):
        if write is not None:
            write(df)
        df = fn(df)


def _writer(folder: Path, kind: str) -> Any:
    import pyarrow.feather as feather

    count = iter(range(1000))

    def write(df: pd.DataFrame) -> None:
        path = folder / f"{next(count)}.{kind}"
        if kind == "arrow":
            feather.write_feather(df, path, compression="uncompressed")
        else:
            df.to_parquet(path, compression="zstd")

    return write


def _project(rows: int, home: Path) -> float:
    """The time of `Engine.run` alone (opening the store is not part of the chain)."""
    from orchestrator.artifacts.store import ArtifactStore
    from orchestrator.engine.loop import Engine
    from orchestrator.execution.local import make_executor
    from orchestrator.store.metadata import MetadataStore

    store = MetadataStore(f"sqlite:///{home / 'orchestrator.db'}")
    artifacts = ArtifactStore(home / "artifacts")
    engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
    graph = data_heavy.build({"rows": rows})
    try:
        t0 = time.perf_counter()
        result = engine.run(graph, target="data_heavy", executor="thread")
        took = time.perf_counter() - t0
    finally:
        engine.close()
        store.close()
    if str(result.status) != "succeeded":
        raise SystemExit(f"error: the run {result.status}: {[s.error for s in result.steps]}")
    return took


def _warm(mib: int) -> None:
    """Touch and free `mib` MiB before timing: a virtual machine that backs its memory
    lazily makes the first touch of fresh memory slow (about 2 s per GiB on the 2-core
    machine these targets are for), and without this that cost falls on whichever
    measurement finds the memory cold, not on the code measured. The peak RSS is
    counted from after it."""
    if mib > 0:
        block = np.ones(mib << 17)  # 8-byte floats
        del block
    _reset_peak_rss()


def one(mode: str, rows: int, home: Path, warm: int = 0) -> dict[str, float]:
    """Time one chain in this process; `home` is a scratch folder the caller owns."""
    home.mkdir(parents=True, exist_ok=True)
    _warm(warm)
    if mode in ("first", "cached"):
        took = _project(rows, home)
    else:
        t0 = time.perf_counter()
        _plain(rows, _writer(home, mode) if mode != "plain" else None)
        took = time.perf_counter() - t0
    return {"seconds": took, "rss_mib": _peak_rss()}


def _reset_peak_rss() -> None:
    """Start the peak RSS afresh from now (Linux: `/proc/self/clear_refs`), so the
    memory `_warm` touched and freed does not count."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss() -> float:
    """The peak RSS since `_reset_peak_rss`, in MiB (the process's, where /proc lacks it)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB on Linux


# -- the driver: each measurement in a fresh process ------------------------------------


DEFAULT_WARM = 2048  # MiB touched before each measurement (`_warm`)
WARM = DEFAULT_WARM


def _child(mode: str, rows: int, home: Path, against: Path | None = None) -> dict[str, float]:
    env = dict(os.environ)
    if against is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(against), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one",
            mode,
            "--rows",
            str(rows),
            "--home",
            str(home),
            "--warm",
            str(WARM),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if out.returncode != 0:
        raise SystemExit(f"error: the {mode} measurement failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(rows: int, reps: int, against: Path | None) -> dict[str, list[dict[str, float]]]:
    modes = ["plain", "arrow", "parquet", "first", "cached"]
    if against is not None:
        modes += ["first_before", "cached_before"]
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in modes}
    for _ in range(reps):
        scratch = Path(tempfile.mkdtemp(prefix="orch-bench-heavy-"))
        try:
            for mode in ("plain", "arrow", "parquet"):
                runs[mode].append(_child(mode, rows, scratch / mode))
            for suffix, where in (("", None), ("_before", against)):
                if suffix and where is None:
                    continue
                home = scratch / f"project{suffix}"
                runs["first" + suffix].append(_child("first", rows, home, where))
                runs["cached" + suffix].append(_child("cached", rows, home, where))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return runs


def report(runs: dict[str, list[dict[str, float]]], rows: int, against: Path | None) -> None:
    def med(mode: str, key: str = "seconds") -> float:
        return statistics.median(r[key] for r in runs[mode])

    base = med("plain")
    import orchestrator

    where = Path(orchestrator.__file__).resolve().parent.parent
    print(f"data-heavy chain: {rows} rows x 15 columns, 4 steps, 3 large intermediates")
    print(
        f"orchestrator from {where}; median (best) of {len(runs['plain'])}; "
        f"python {sys.version[:6]}; {WARM} MiB touched before each measurement"
    )
    best_base = min(r["seconds"] for r in runs["plain"])
    labels = {
        "plain": "plain Python, in memory",
        "arrow": "plain + Arrow IPC (uncompressed) each intermediate",
        "parquet": "plain + Parquet/zstd each intermediate",
        "first": "project, first run (thread executor)",
        "cached": "project, cached re-run",
    }
    if against is not None:
        labels["first_before"] = f"  before ({against}), first run"
        labels["cached_before"] = "  before, cached re-run"
    for mode, label in labels.items():
        t, b = med(mode), min(r["seconds"] for r in runs[mode])
        print(f"  {label:<52} {t:7.3f} s  {t / base:5.2f}x   ({b:.3f} s {b / best_base:5.2f}x)")
    rss_plain = med("plain", "rss_mib")
    for mode, label in (("first", "project first run"), ("first_before", "before")):
        if mode in runs:
            rss = med(mode, "rss_mib")
            print(
                f"  peak RSS: plain {rss_plain:.0f} MiB, {label} {rss:.0f} MiB "
                f"({rss / rss_plain:.2f}x)"
            )
    print("targets: first run <= 1.5x, cached <= 0.1 s, peak RSS <= 1.2x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--one", choices=["plain", "arrow", "parquet", "first", "cached"])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--warm", type=int, default=DEFAULT_WARM, help="MiB touched before timing")
    parser.add_argument("--against", type=Path, help="another checkout, measured alongside")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.rows, args.home, args.warm)))
        return
    global WARM  # noqa: PLW0603 - the children's setting, read by `_child`
    WARM = args.warm
    report(measure(args.rows, args.reps, args.against), args.rows, args.against)


if __name__ == "__main__":
    os.environ.setdefault("ORCH_LOG", "warning")
    main()
