"""Per-step overhead of the Dask executor beside the thread executor, in milliseconds.

What it measures
    The wall time of `Engine.run` divided by the number of steps, for no-op steps (each
    returns its distinct `i` parameter, so each has its own cache key and its own small
    JSON artifact), on the shapes of `bench/overhead.py`: a 100-step chain and a
    1 -> 100 -> 1 fan-out/fan-in. For each shape and executor:

    * first run: a fresh temporary folder (new SQLite DB, empty artifact store, new
      Engine) per repetition, so every step runs;
    * cached re-run: a second `Engine.run` of the same graph on that store; every step is
      a cache hit, which the engine resolves without submitting anything, so the Dask
      figure is the engine's cost alone (the cluster is idle).

    The stores are composed as the CLI does it: `MetadataStore("sqlite:///<tmp>/...db")`,
    `ArtifactStore(<tmp>/artifacts)`, `Engine(store, artifacts, executors)`, and the Dask
    executor is `orchestrator.execution.backends.make_executor("dask", artifacts,
    options={"db_url": ...})`: a `LocalCluster` of 2 worker processes (1 thread each) on
    loopback. Each step attempt is one Dask task (`orchestrator.execution.remote.run_invocation`):
    JSON in, the worker reads inputs from and writes outputs to the artifact store, JSON
    out. The engine keeps at most `executor.workers` (2) Dask tasks in flight, against 4 x
    CPUs (at most 16) threads for the thread executor.

    Excluded from the per-step figures, printed separately per repetition: starting the
    LocalCluster (inside `make_executor`), a warm-up run of 3 other no-op steps on the new
    cluster (the worker processes' first import of orchestrator and of this file), and
    `Engine.close` (which closes the client and the cluster).

    The steps are defined in this file, not imported from `bench/overhead.py`: a Dask
    worker finds a step by reference, and the fan-in sink of overhead.py is generated with
    `exec` and bound to no module attribute, so a worker could not resolve it. Here the
    sinks are module attributes (`gather20`, `gather100`); run as a script, the steps'
    references are this file's path, which the workers import (without running `main`).

How to run
    python bench/dask_overhead.py              # full sizes, 3 repetitions, ~1-2 min on 2 cores
    python bench/dask_overhead.py --quick      # chain 20 and fan 1->20->1, 1 repetition
    python bench/dask_overhead.py --reps 5 --tmp /dev/shm
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine, RunResult
from orchestrator.execution.backends import make_executor
from orchestrator.execution.local import Executor
from orchestrator.model.graph import Graph
from orchestrator.model.pipeline import Pipeline
from orchestrator.model.step import Step, step
from orchestrator.state import RunStatus, StepState
from orchestrator.store.metadata import MetadataStore

EXECUTORS = ("thread", "dask")
PHASES = ("first run", "cached re-run")


# -- steps (module attributes, so a Dask worker can resolve them) -------------------------


@step
def noop(a: int | None = None, i: int = 0) -> int:
    """A no-op step with 0 or 1 input; `i` makes each node's cache key distinct."""
    return i


def _gather(n: int) -> Step[Any]:
    """A no-op step `gather{n}` taking `n` int inputs `x0..x{n-1}` (the fan-in sink)."""
    args = ", ".join(f"x{k}: int" for k in range(n))
    src = f"def gather{n}({args}, i: int = 0) -> int:\n    return i\n"
    namespace: dict[str, Any] = {"__name__": __name__}
    exec(src, namespace)  # noqa: S102 - generated from integers only
    return step(namespace[f"gather{n}"])


gather20 = _gather(20)
gather100 = _gather(100)
SINKS = {20: gather20, 100: gather100}


# -- shapes -------------------------------------------------------------------------------

Spec = list[dict[str, Any]]


def chain_spec(n: int, offset: int = 0) -> Spec:
    spec: Spec = [{"name": "s0", "step": noop, "params": {"i": offset}}]
    for k in range(1, n):
        entry = {"name": f"s{k}", "step": noop, "inputs": {"a": f"s{k - 1}"}}
        spec.append(entry | {"params": {"i": offset + k}})
    return spec


def fan_spec(width: int) -> Spec:
    spec: Spec = [{"name": "src", "step": noop, "params": {"i": 0}}]
    for j in range(width):
        spec.append({"name": f"m{j}", "step": noop, "inputs": {"a": "src"}, "params": {"i": j + 1}})
    spec.append(
        {
            "name": "sink",
            "step": SINKS[width],
            "inputs": {f"x{j}": f"m{j}" for j in range(width)},
            "params": {"i": width + 1},
        }
    )
    return spec


# -- measurement --------------------------------------------------------------------------


def check(result: RunResult, n: int, state: str) -> None:
    states = {s.state for s in result.steps}
    if result.status != RunStatus.SUCCEEDED or len(result.steps) != n or states != {state}:
        bad = [(s.name, s.state, s.error) for s in result.steps if s.state != state][:3]
        raise SystemExit(
            f"benchmark run did not behave: status={result.status}, "
            f"{len(result.steps)}/{n} steps, states={states}, e.g. {bad}"
        )


class Rep:
    """One repetition: a fresh folder, stores, executor and engine."""

    def __init__(self, parent: str, executor: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="orch-dask-bench-", dir=parent))
        self.db_url = f"sqlite:///{self.tmp}/orchestrator.db"
        self.store = MetadataStore(self.db_url)
        self.artifacts = ArtifactStore(self.tmp / "artifacts")
        self.executor_name = executor
        t0 = time.perf_counter()
        self.executor: Executor = make_executor(
            executor, self.artifacts, options={"db_url": self.db_url}
        )
        self.start_s = time.perf_counter() - t0
        ex = self.executor
        self.engine = Engine(self.store, self.artifacts, lambda name: ex)
        self.warm_s = 0.0
        self.close_s = 0.0

    def run(self, graph: Graph) -> tuple[float, RunResult]:
        gc.collect()
        t0 = time.perf_counter()
        result = self.engine.run(graph, target="bench", executor=self.executor_name)
        return time.perf_counter() - t0, result

    def warm_up(self) -> None:
        """Three other no-op steps, so the workers have imported everything they need."""
        graph = Pipeline.from_spec("warm", chain_spec(3, offset=10_000_000))
        self.warm_s, result = self.run(graph)
        check(result, 3, StepState.SUCCEEDED)

    def close(self) -> None:
        t0 = time.perf_counter()
        self.engine.close()
        self.close_s = time.perf_counter() - t0
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def measure(graph: Graph, executor: str, reps: int, parent: str) -> tuple[list[list[float]], Any]:
    """Seconds per phase and repetition, and the (start, warm-up, close) seconds."""
    n = len(graph.order)
    times: list[list[float]] = [[], []]
    fixed: list[tuple[float, float, float]] = []
    for _ in range(reps):
        rep = Rep(parent, executor)
        try:
            rep.warm_up()
            for phase, state in enumerate((StepState.SUCCEEDED, StepState.CACHED)):
                t, result = rep.run(graph)
                check(result, n, state)
                times[phase].append(t)
        finally:
            rep.close()
        fixed.append((rep.start_s, rep.warm_s, rep.close_s))
    return times, fixed


def fmt(times: list[float], n: int) -> str:
    best, median = min(times) * 1e3 / n, statistics.median(times) * 1e3 / n
    return f"{best:8.3f} ({median:8.3f})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, 1 repetition")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 3)")
    ap.add_argument("--tmp", default=tempfile.gettempdir(), help="parent folder of the stores")
    ap.add_argument("--executors", default=",".join(EXECUTORS), help="comma-separated executors")
    args = ap.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    executors = [e for e in args.executors.split(",") if e]
    size = 20 if args.quick else 100
    shapes = [
        (f"chain {size}", Pipeline.from_spec("chain", chain_spec(size))),
        (f"fan 1->{size}->1", Pipeline.from_spec("fan", fan_spec(size))),
    ]

    t_start = time.perf_counter()
    print(
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; stores under {args.tmp}; best (median) of {reps} "
        "repetitions, each on a fresh store (and, for dask, a fresh LocalCluster)"
    )
    print("ms/step = wall time of Engine.run / number of steps")
    header = f"{'shape':<16}{'steps':>6}  {'executor':<9}" + "".join(f"{p:>22}" for p in PHASES)
    header += f"{'cluster start':>15}{'warm-up':>10}{'close':>8}"
    print(header)
    print("-" * len(header))
    for label, graph in shapes:
        n = len(graph.order)
        for ex in executors:
            times, fixed = measure(graph, ex, reps, args.tmp)
            cells = "".join(f"{fmt(t, n):>22}" for t in times)
            start, warm, close = (statistics.median(col) for col in zip(*fixed, strict=True))
            print(
                f"{label:<16}{n:>6}  {ex:<9}{cells}{start:>14.2f}s{warm:>9.2f}s{close:>7.2f}s",
                flush=True,
            )
    print(
        "\ncluster start / warm-up / close: median seconds per repetition, not in ms/step "
        "(for thread: making the pool, a 3-step run, shutting the pool down)"
    )
    print(f"total benchmark time {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
