"""A map over 10,000 elements of a no-op step: expansion plus run, in ms per child.

What it measures
    `items(n)` returns `list(range(n))` at run time; `noop.map(x=items)` runs one child
    per element; `total` sums the children's outputs (a list input). The stores are
    composed as the CLI does it (SQLite metadata store, artifact folder, thread
    executor), opened outside the timed region. For each size it prints, as the wall
    time of `Engine.run` divided by the number of children:

    * first run: fresh store; every element is stored, every child runs and is recorded;
    * whole map cached: the same list again; the map is one cache hit;
    * one element added: the list has one more element, so the map expands again: every
      old child is a cache hit (its artifacts verified, a `cached` row written) and one
      child runs. This is the cost of a cached child;
    * artifact files the first run created, per child (its elements and the children's
      outputs are inline in their rows unless the store writes every value as a file);
    * peak RSS of this process after all runs (it includes the interpreter, pandas and
      the libraries the orchestrator loads);
    * the store and the UI on that run (n + 1 children): `MetadataStore.step_runs`, the
      run page and its JSON, through the UI's test client (median of 5).

    Beside it, plain Python: the same no-op called in a loop over the list, so the
    ratio says what the per-child record costs.

How to run
    python bench/map.py               # 10,000 elements, best of 3
    python bench/map.py --n 1000 --reps 1

Targets on this machine: first run <= 0.5 ms/child, a cached child <= 0.1 ms/child,
peak RSS < 500 MB.
"""

from __future__ import annotations

import argparse
import gc
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from orchestrator import pipeline, step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine
from orchestrator.execution.backends import make_executor
from orchestrator.state import RunStatus
from orchestrator.store.metadata import MetadataStore


@step
def items(n: int = 10, extra: int = 0) -> list[int]:
    return list(range(n + extra))


@step
def noop(x: int) -> int:
    return x


@step
def total(xs: list[int]) -> int:
    return sum(xs)


@pipeline
def mapped(n: int = 10, extra: int = 0) -> None:
    total(noop.map(x=items(n, extra)))


def run_once(folder: Path, n: int, extra: int) -> tuple[float, dict[str, int]]:
    store = MetadataStore(f"sqlite:///{folder}/orchestrator.db")
    artifacts = ArtifactStore(folder / "artifacts")
    engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
    graph = mapped.build({"n": n, "extra": extra})
    gc.collect()
    t0 = time.perf_counter()
    result = engine.run(graph, target="bench", executor="thread")
    took = time.perf_counter() - t0
    engine.close()
    store.close()
    if result.status != RunStatus.SUCCEEDED:
        bad = [(s.name, s.error) for s in result.steps if s.state == "failed"][:3]
        raise SystemExit(f"benchmark run failed: {bad}")
    counts: dict[str, int] = {}
    for s in result.steps:
        counts[s.state] = counts.get(s.state, 0) + 1
    return took, counts


def ui_times(folder: Path, repeat: int = 5) -> dict[str, float]:
    """Median ms of the run page, its JSON and `MetadataStore.step_runs` for the newest
    run of the store in `folder` (the UI's test client, no network)."""
    from fastapi.testclient import TestClient

    from orchestrator.ui.app import create_app

    store = MetadataStore(f"sqlite:///{folder}/orchestrator.db")
    artifacts = ArtifactStore(folder / "artifacts")
    run_id = store.list_runs(limit=1)[0]["id"]
    client = TestClient(create_app(store, artifacts, home=folder))
    out: dict[str, float] = {}
    for label, call in (
        ("store.step_runs", lambda: store.step_runs(run_id)),
        ("GET /runs/ID", lambda: client.get(f"/runs/{run_id}")),
        ("GET /api/runs/ID", lambda: client.get(f"/api/runs/{run_id}")),
    ):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            res = call()
            times.append(time.perf_counter() - t0)
            if hasattr(res, "status_code") and res.status_code != 200:
                raise SystemExit(f"{label}: HTTP {res.status_code}")
        out[label] = sorted(times)[len(times) // 2] * 1000
    store.close()
    return out


def plain(n: int) -> float:
    xs = list(range(n))
    t0 = time.perf_counter()
    out = [noop.fn(x) for x in xs]
    sum(out)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tmp", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    args = ap.parse_args(argv)
    n = args.n
    firsts, wholes, children = [], [], []
    ui: dict[str, float] = {}
    for rep in range(args.reps):
        folder = Path(tempfile.mkdtemp(prefix="orch-map-", dir=args.tmp))
        try:
            t, c = run_once(folder, n, 0)
            firsts.append(t)
            files = len(ArtifactStore(folder / "artifacts").all_files())
            t, c2 = run_once(folder, n, 0)
            wholes.append(t)
            t, c3 = run_once(folder, n, 1)
            children.append(t)
            if rep == 0:
                ui = ui_times(folder)  # the run with n + 1 children
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    base = min(plain(n) for _ in range(3))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"map over {n} elements of a no-op step, thread executor, SQLite, {args.tmp}")
    print(f"  states, first run:        {c}")
    print(f"  states, one element more: {c3}")
    ms = 1000 / n
    print(
        f"  first run            {min(firsts) * ms:7.3f} ms/child   (target <= 0.5; "
        f"{min(firsts):.2f} s in all)"
    )
    print(f"  files, first run     {files / n:7.3f} per child")
    print(f"  whole map cached     {min(wholes) * ms:7.3f} ms/child   (one cache hit)")
    print(
        f"  one element added    {min(children) * ms:7.3f} ms/child   (target <= 0.1: "
        f"{n} cached children and 1 run)"
    )
    print(f"  plain Python loop    {base * ms:7.4f} ms/element")
    print(f"  first run / plain    {min(firsts) / base:7.0f}x")
    print(f"  peak RSS             {rss:7.0f} MB   (target < 500)")
    for label, ms_ in ui.items():
        print(f"  {label:<20} {ms_:7.1f} ms       (median of 5, the run with {n + 1} children)")


if __name__ == "__main__":
    sys.setrecursionlimit(10_000)
    main()
