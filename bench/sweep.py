"""A sweep of N combinations over a 1-second shared prefix, against N separate runs.

What it measures
    The pipeline (written to a temporary file, as a user's would be) is
    `ingest (sleeps --prefix seconds) -> features -> train(c) -> evaluate(model)`; the
    swept parameter `train.c` takes N distinct values, so `ingest` and `features` are
    the same in every combination and `train`/`evaluate` differ.

    * sweep, first: `orchestrator.sweep(..., grid={"train.c": [...]})` in a fresh
      workspace (new SQLite file, empty artifact store): one run of 2 + 2N steps whose
      prefix runs once, then the table read back from the artifacts;
    * sweep, cached: the same sweep again in that workspace: every step a cache hit;
    * one by one, no shared cache: N `orchestrator.run` calls, each with `train.c` set
      and its own fresh workspace, as N separate jobs on separate machines (or a loop with
      the cache off) would do: each pays the prefix. This is the baseline of the target;
    * one by one, shared cache: the same N runs in one workspace; the cache makes every
      run after the first skip the prefix, so this shows the per-run overhead a sweep
      saves even when the cache already shares the prefix.

    A first run in a workspace of its own loads the code (imports) before any timing.
    It prints the wall times and the ratios (target: the sweep >= 10x faster than one by
    one without a shared cache). Every run uses the thread executor.

How to run
    python bench/sweep.py                   # N = 100, a 1-second prefix (~2.5 minutes)
    python bench/sweep.py -n 20 --prefix 0.2    # a quick smoke check
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import textwrap
import time
from pathlib import Path

import orchestrator

PIPELINE = """
import time

from orchestrator import pipeline, step


@step(kind="ingest")
def ingest(seconds: float = 1.0, rows: int = 1000) -> list[float]:
    time.sleep(seconds)
    return [float(i % 97) for i in range(rows)]


@step(kind="feature")
def features(xs: list[float]) -> list[float]:
    top = max(xs)
    return [x / top for x in xs]


@step(kind="train")
def train(xs: list[float], c: float = 1.0) -> dict[str, float]:
    return {"c": c, "w": sum(xs) / len(xs) * c}


@step(kind="evaluate")
def evaluate(model: dict[str, float]) -> dict[str, float]:
    return {"loss": abs(model["w"] - 0.5)}


@pipeline
def tune(seconds: float = 1.0):
    xs = features(ingest(seconds=seconds))
    evaluate(train(xs))
"""


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100, help="combinations (default 100)")
    parser.add_argument("--prefix", type=float, default=1.0, help="seconds of the prefix")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="orch-bench-sweep-"))
    try:
        target = root / "tune.py"
        target.write_text(textwrap.dedent(PIPELINE).lstrip())
        spec = f"{target}:tune"
        values = [round(0.01 * (i + 1), 4) for i in range(args.n)]
        base = {"seconds": args.prefix}
        home = root / "sweep-home"
        # imports, the engine's first use: once, outside every timed figure
        orchestrator.run(spec, {"seconds": 0.0}, home=root / "warm-up")
        result: list[orchestrator.Sweep] = []

        def sweep() -> None:
            result.append(orchestrator.sweep(spec, {"train.c": values}, params=base, home=home))
            assert len(result[-1].table()) == args.n

        first = _timed(sweep)
        steps = len(result[-1].run.steps)
        cached = _timed(sweep)
        assert {s.state for s in result[-1].run.steps} == {"cached"}

        def separate(shared: bool) -> None:
            for i, c in enumerate(values):
                where = root / ("shared-home" if shared else f"home-{i}")
                run = orchestrator.run(spec, {**base, "train.c": c}, home=where)
                assert run.status == "succeeded"

        fresh = _timed(lambda: separate(False))
        shared = _timed(lambda: separate(True))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n = args.n
    print(f"sweep of {n} combinations over a {args.prefix:g} s shared prefix")
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, thread executor")
    print(f"  sweep, first run ({steps} steps)         {first:8.2f} s")
    print(f"  sweep, cached re-run                   {cached:8.2f} s")
    print(f"  {n} separate runs, no shared cache      {fresh:8.2f} s")
    print(f"  {n} separate runs, one shared cache     {shared:8.2f} s")
    print(f"  ratio, separate (no shared cache) / sweep  {fresh / first:6.1f}x  (target >= 10x)")
    print(f"  ratio, separate (shared cache) / sweep     {shared / first:6.1f}x")


if __name__ == "__main__":
    main()
