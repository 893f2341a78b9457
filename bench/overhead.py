"""Engine overhead per step, in milliseconds, for no-op steps recorded in SQLite.

What it measures
    The wall time of `Engine.run` (upsert pipeline, create run, load the cache index,
    schedule, execute, write step rows / artifacts / cache entries, finish run) divided
    by the number of steps, for steps that do nothing but return an int. Each step gets a
    distinct `i` parameter and returns it, so every step has its own cache key and its
    own small JSON artifact, as real steps would: inline in its rows (no file), unless
    the store writes every artifact as a file (`inline_max=0`). The last column is the
    number of artifact files the first run created, per step.

    The stores are composed as the CLI does it (see `orchestrator.config.Workspace` and
    `orchestrator.api.execute`): `MetadataStore("sqlite:///<tmp>/orchestrator.db")`,
    `ArtifactStore(<tmp>/artifacts)` and `Engine(store, artifacts, make_executor)`; the
    store is opened (and migrated) outside the timed region.

    Shapes: a 100-step chain; a 1 -> 500 -> 1 fan-out/fan-in (the sink has 500 inputs);
    a 20 x 20 lattice (step j of layer i+1 is fed by steps j and (j+1) % 20 of layer i).
    For each shape and for the `thread` and `sequential` executors it prints:

    * first run: a fresh temporary folder (new SQLite DB, empty artifact store, new
      Engine) per repetition, so nothing is cached;
    * cached re-run: a second `Engine.run` of the same graph on that store, where
      every step is a cache hit (its artifacts are verified, a `cached` row is written);
    * miss, existing store: a third run on that store of the same shape with every `i`
      changed, so every step misses again in a store that already exists (most of
      its `ab/` shard folders are made; each miss is explained against history).
      This is the steady-state cost of a miss; on a slow filesystem the fresh-store
      figure also pays for creating the shard folders.

    A `single` shape (one step) shows the fixed cost of one `Engine.run`.

    Figures are best (and median) of `--reps` repetitions. It also prints the time to
    build, validate and plan a 10,000-step DAG (a 100 x 100 lattice through
    `Pipeline.from_spec`, which runs `Graph.build`: type checks, parameter validation,
    cycle check and topological order).

    The temporary stores go under the system temp folder and, when it exists, also
    under /dev/shm (tmpfs), one table each: file and folder creation costs differ a lot
    between filesystems, so each table starts with a probe of those costs. Folders are
    deleted after each table, not after each run: on ext4 mounted with `discard`, mass
    deletes slow down the file creations that follow.

How to run
    python bench/overhead.py            # full sizes, under a minute on 2 cores
    python bench/overhead.py --quick    # small sizes, ~10 s (smoke check)
    python bench/overhead.py --tmp /var/tmp --tmp /dev/shm   # choose the folders
    python bench/overhead.py --executors sequential --reps 5

Side by side
    python bench/overhead.py --against ../other-checkout [--quick] [--reps 5]

    measures this checkout and another one (its `orchestrator` package, imported
    through PYTHONPATH; this script's own shapes and timing) in child processes that
    alternate, one repetition each, so both see the same machine load; it prints the
    best figure of each and their ratio (this / other: below 1 is faster here).

Targets printed next to the figures: first run <= 0.3 ms/step, cached re-run
<= 0.06 ms/step, 10k-step plan < 1 s.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine, RunResult
from orchestrator.execution.local import make_executor
from orchestrator.model.graph import Graph
from orchestrator.model.pipeline import Pipeline
from orchestrator.model.step import Step, step
from orchestrator.state import RunStatus, StepState
from orchestrator.store.metadata import MetadataStore

FIRST_TARGET_MS = 0.3
CACHED_TARGET_MS = 0.06
PLAN_TARGET_S = 1.0
EXECUTORS = ("thread", "sequential")


# -- steps ----------------------------------------------------------------------------


@step
def noop(a: int | None = None, b: int | None = None, i: int = 0) -> int:
    """A no-op step with 0, 1 or 2 inputs; `i` makes each node's cache key distinct."""
    return i


def gather_step(n: int) -> Step[Any]:
    """A no-op step taking `n` int inputs `x0..x{n-1}` (the fan-in sink).

    Generated with exec because a step's inputs are its named arguments; the code
    fingerprint falls back to hashing the bytecode, as it does for any function
    without retrievable source.
    """
    args = ", ".join(f"x{k}: int" for k in range(n))
    src = f"def gather({args}, i: int = 0) -> int:\n    return i\n"
    namespace: dict[str, Any] = {"__name__": __name__}
    exec(src, namespace)  # noqa: S102 - generated from integers only
    return step(namespace["gather"])


# -- shapes -----------------------------------------------------------------------------


Spec = list[dict[str, Any]]


def chain_spec(n: int) -> Spec:
    spec: Spec = [{"name": "s0", "step": noop, "params": {"i": 0}}]
    for k in range(1, n):
        spec.append(
            {"name": f"s{k}", "step": noop, "inputs": {"a": f"s{k - 1}"}, "params": {"i": k}}
        )
    return spec


def fan_spec(width: int) -> Spec:
    spec: Spec = [{"name": "src", "step": noop, "params": {"i": 0}}]
    for j in range(width):
        spec.append({"name": f"m{j}", "step": noop, "inputs": {"a": "src"}, "params": {"i": j + 1}})
    spec.append(
        {
            "name": "sink",
            "step": gather_step(width),
            "inputs": {f"x{j}": f"m{j}" for j in range(width)},
            "params": {"i": width + 1},
        }
    )
    return spec


def lattice_spec(width: int, depth: int) -> Spec:
    spec: Spec = []
    for layer in range(depth):
        for j in range(width):
            entry: dict[str, Any] = {
                "name": f"l{layer}_{j}",
                "step": noop,
                "params": {"i": layer * width + j},
            }
            if layer:
                entry["inputs"] = {"a": f"l{layer - 1}_{j}", "b": f"l{layer - 1}_{(j + 1) % width}"}
            spec.append(entry)
    return spec


# -- measurement ------------------------------------------------------------------------


def shifted(spec: Spec, offset: int) -> Spec:
    """The same shape with every `i` moved by `offset`: every cache key changes."""
    return [entry | {"params": {"i": entry["params"]["i"] + offset}} for entry in spec]


class Stores:
    """A fresh temporary folder with a metadata store, an artifact store and an engine."""

    def __init__(self, parent: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="orch-bench-", dir=parent))
        self.store = MetadataStore(f"sqlite:///{self.tmp}/orchestrator.db")
        self.artifacts = ArtifactStore(self.tmp / "artifacts")
        artifacts = self.artifacts
        self.engine = Engine(self.store, artifacts, lambda name: make_executor(name, artifacts))

    def run(self, graph: Graph, executor: str) -> tuple[float, RunResult]:
        gc.collect()
        t0 = time.perf_counter()
        result = self.engine.run(graph, target="bench", executor=executor)
        return time.perf_counter() - t0, result

    def close(self) -> None:
        """Close the stores; the folder is removed later by `remove_folders` (deleting
        thousands of files right away slows the next file creations on some filesystems,
        e.g. ext4 mounted with `discard`)."""
        self.engine.close()
        self.store.close()
        _to_remove.append(self.tmp)


_to_remove: list[Path] = []


def remove_folders() -> None:
    while _to_remove:
        shutil.rmtree(_to_remove.pop(), ignore_errors=True)


atexit.register(remove_folders)


def check(result: RunResult, n: int, state: str) -> None:
    states = {s.state for s in result.steps}
    if result.status != RunStatus.SUCCEEDED or len(result.steps) != n or states != {state}:
        bad = [(s.name, s.state, s.error) for s in result.steps if s.state != state][:3]
        raise SystemExit(
            f"benchmark run did not behave: status={result.status}, "
            f"{len(result.steps)}/{n} steps, states={states}, e.g. {bad}"
        )


PHASES = ("first run", "cached re-run", "miss, existing store")
TARGETS = (FIRST_TARGET_MS, CACHED_TARGET_MS, FIRST_TARGET_MS)


def measure(
    graph: Graph, variant: Graph, executor: str, reps: int, parent: str
) -> tuple[list[list[float]], int]:
    """Seconds per phase and repetition (each repetition starts from a fresh store), and
    the artifact files the first run made."""
    n = len(graph.order)
    times: list[list[float]] = [[], [], []]
    files = 0
    for _ in range(reps):
        stores = Stores(parent)
        try:
            for phase, (g, state) in enumerate(
                [
                    (graph, StepState.SUCCEEDED),
                    (graph, StepState.CACHED),
                    (variant, StepState.SUCCEEDED),
                ]
            ):
                t, result = stores.run(g, executor)
                check(result, n, state)
                times[phase].append(t)
                if phase == 0:
                    files = len(stores.artifacts.all_files())
        finally:
            stores.close()
    return times, files


def fs_probe(parent: str, n: int = 30) -> tuple[float, float]:
    """Microseconds to make a folder, and to write a small file as ArtifactStore does."""
    root = Path(tempfile.mkdtemp(prefix="orch-probe-", dir=parent))
    try:
        t0 = time.perf_counter()
        for k in range(n):
            (root / f"{k:02x}").mkdir()
        t1 = time.perf_counter()
        for k in range(n):
            fd, tmp = tempfile.mkstemp(dir=root / f"{k:02x}", prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(b"1")
            os.replace(tmp, root / f"{k:02x}" / "a.json")
        t2 = time.perf_counter()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6


def fs_type(path: str) -> str:
    """The filesystem type of `path` from /proc/mounts (best effort)."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and path.startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def fmt(times: list[float], n: int, target: float) -> str:
    best, median = min(times) * 1e3 / n, statistics.median(times) * 1e3 / n
    flag = "" if n == 1 else "ok" if best <= target else "MISS"
    return f"{best:8.3f} ({median:7.3f}) {flag:<4}"


def time_plan(make_spec: Callable[[], Spec], reps: int) -> tuple[float, float, int]:
    """Best time to write the spec and to build+validate+plan it (from_spec -> Graph.build)."""
    spec_times, build_times, n = [], [], 0
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        spec = make_spec()
        t1 = time.perf_counter()
        graph = Pipeline.from_spec("plan", spec)
        t2 = time.perf_counter()
        n = len(graph.order)
        spec_times.append(t1 - t0)
        build_times.append(t2 - t1)
        del graph, spec
    return min(spec_times), min(build_times), n


# -- main -------------------------------------------------------------------------------


def default_folders() -> list[str]:
    folders = [tempfile.gettempdir()]
    if (
        os.path.isdir("/dev/shm")
        and os.access("/dev/shm", os.W_OK)
        and fs_type("/dev/shm") != fs_type(folders[0])
    ):
        folders.append("/dev/shm")
    return folders


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, 2 repetitions (smoke check)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 3)")
    ap.add_argument(
        "--tmp",
        action="append",
        default=None,
        metavar="DIR",
        help="parent folder for the temporary stores (repeatable; default: the "
        "system temp folder and /dev/shm)",
    )
    ap.add_argument("--executors", default=",".join(EXECUTORS), help="comma-separated executors")
    ap.add_argument(
        "--against",
        metavar="CHECKOUT",
        default=None,
        help="measure this checkout and CHECKOUT in alternation and print ratios",
    )
    ap.add_argument("--emit-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    reps = args.reps or (2 if args.quick else 3)
    executors = [e for e in args.executors.split(",") if e]
    folders = args.tmp or default_folders()

    if args.quick:
        specs = [
            ("single", chain_spec(1)),
            ("chain 20", chain_spec(20)),
            ("fan 1->50->1", fan_spec(50)),
            ("lattice 5x5", lattice_spec(5, 5)),
        ]
        plan_shape = ("lattice 30x30", lambda: lattice_spec(30, 30))
    else:
        specs = [
            ("single", chain_spec(1)),
            ("chain 100", chain_spec(100)),
            ("fan 1->500->1", fan_spec(500)),
            ("lattice 20x20", lattice_spec(20, 20)),
        ]
        plan_shape = ("lattice 100x100", lambda: lattice_spec(100, 100))
    if args.against:
        return compare(args, reps, executors, folders)
    shapes = [
        (
            label,
            Pipeline.from_spec(label.split()[0], spec),
            Pipeline.from_spec(label.split()[0], shifted(spec, 1_000_000)),
        )
        for label, spec in specs
    ]

    if args.emit_json:
        return emit_json(shapes, executors, reps, folders)

    t_start = time.perf_counter()
    print(
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; best (median) of {reps} repetitions, each on a fresh store"
    )
    print(
        "ms/step = wall time of Engine.run / number of steps; targets: first run <= "
        f"{FIRST_TARGET_MS} ms/step, cached re-run <= {CACHED_TARGET_MS} ms/step"
    )

    # warm up imports, code fingerprints and lazy serializer imports outside the figures
    warm = Pipeline.from_spec("warm", chain_spec(3))
    warm2 = Pipeline.from_spec("warm", shifted(chain_spec(3), 1_000_000))
    for ex in executors:
        measure(warm, warm2, ex, 1, folders[0])
    remove_folders()

    for folder in folders:
        mkdir_us, file_us = fs_probe(folder)
        print(
            f"\nstores under {folder} ({fs_type(folder)}): probe mkdir {mkdir_us:.0f} us, "
            f"new small file (mkstemp+write+rename) {file_us:.0f} us"
        )
        header = (
            f"{'shape':<15}{'steps':>6}  {'executor':<11}"
            + "".join(f"{p:>25}" for p in PHASES)
            + f"{'files/step':>12}"
        )
        print(header)
        print("-" * len(header))
        for label, graph, variant in shapes:
            n = len(graph.order)
            for ex in executors:
                times, files = measure(graph, variant, ex, reps, folder)
                cells = "".join(
                    f"{fmt(t, n, target):>25}" for t, target in zip(times, TARGETS, strict=True)
                )
                print(f"{label:<15}{n:>6}  {ex:<11}{cells}{files / n:>12.2f}", flush=True)
        remove_folders()

    print(
        "\n'single' is one step: the fixed cost of one Engine.run (new SQLAlchemy engine, "
        "so its first statements compile; no target)"
    )
    label, make = plan_shape
    spec_s, build_s, n = time_plan(make, reps)
    flag = "ok" if build_s < PLAN_TARGET_S else "MISS"
    print(
        f"plan {label} ({n} steps): build+validate+plan (Pipeline.from_spec -> Graph.build) "
        f"{build_s:.3f} s  {flag} (target < {PLAN_TARGET_S} s); writing the spec list "
        f"{spec_s * 1e3:.1f} ms"
    )
    print(f"total benchmark time {time.perf_counter() - t_start:.1f} s")


# -- side by side ----------------------------------------------------------------------


def emit_json(
    shapes: list[tuple[str, Graph, Graph]], executors: list[str], reps: int, folders: list[str]
) -> None:
    """One child of `compare`: seconds per phase and repetition, as JSON on stdout."""
    warm = Pipeline.from_spec("warm", chain_spec(3))
    warm2 = Pipeline.from_spec("warm", shifted(chain_spec(3), 1_000_000))
    for ex in executors:
        measure(warm, warm2, ex, 1, folders[0])
    out = []
    for folder in folders:
        for label, graph, variant in shapes:
            for ex in executors:
                times, _ = measure(graph, variant, ex, reps, folder)
                out.append([folder, label, ex, len(graph.order), times])
        remove_folders()
    import orchestrator

    print(json.dumps({"package": orchestrator.__file__, "rows": out}))


def _child(
    checkout: str, args: argparse.Namespace, executors: list[str], folders: list[str]
) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--emit-json", "--reps", "1"]
    cmd += ["--executors", ",".join(executors)] + [f"--tmp={f}" for f in folders]
    cmd += ["--quick"] if args.quick else []
    env = os.environ | {"PYTHONPATH": os.path.abspath(checkout)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=checkout)
    if done.returncode:
        raise SystemExit(f"the run against {checkout} failed:\n{done.stderr[-2000:]}")
    got: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return got


def compare(args: argparse.Namespace, reps: int, executors: list[str], folders: list[str]) -> None:
    """This checkout and `args.against`, one repetition each in turn (see the module)."""
    here = str(Path(__file__).resolve().parent.parent)
    sides = {"this": here, "other": args.against}
    times: dict[str, dict[tuple[str, str, str], list[list[float]]]] = {"this": {}, "other": {}}
    sizes: dict[tuple[str, str, str], int] = {}
    packages = {}
    for k in range(reps):
        order = ["this", "other"] if k % 2 == 0 else ["other", "this"]
        for side in order:
            got = _child(sides[side], args, executors, folders)
            packages[side] = got["package"]
            for folder, label, ex, n, t in got["rows"]:
                cell = times[side].setdefault((folder, label, ex), [[], [], []])
                for phase in range(3):
                    cell[phase].extend(t[phase])
                sizes[(folder, label, ex)] = n
    print(f"this: {packages['this']}\nother: {packages['other']}")
    print(f"best of {reps} alternating repetitions; ms/step this / other (ratio)")
    header = f"{'store folder':<14}{'shape':<15}{'executor':<11}" + "".join(
        f"{p:>28}" for p in PHASES
    )
    print(header)
    print("-" * len(header))
    for key, n in sizes.items():
        folder, label, ex = key
        cells = ""
        for phase, target in enumerate(TARGETS):
            a = min(times["this"][key][phase]) * 1e3 / n
            b = min(times["other"][key][phase]) * 1e3 / n
            flag = "" if n == 1 else "ok" if a <= target else "MISS"
            cells += f"{a:8.3f} /{b:7.3f} ({a / b:4.2f}) {flag:<4}"
        print(f"{folder:<14}{label:<15}{ex:<11}{cells}")


if __name__ == "__main__":
    sys.exit(main())
