"""Container overhead per step of the Docker executor: warm pool, per-step containers, threads.

Runs chains of steps on a fresh SQLite store with the thread executor, the Docker
executor's warm container pool (the default) and a container per step
(`hints={"pool": False}`, or `ORCH_DOCKER_POOL=0`), and prints the wall time per step side
by side: a chain of small no-op steps (a list of ints in, a list out), and a chain of
scikit-learn steps (a logistic regression on the digits dataset). Each chain runs twice
in one engine: "cold" pays the engine's first container start (as one `orch run` does),
"warm" runs on the containers the pool kept. Last, prewarming: a fresh engine runs a
host step (a 0.5 s ingest on the thread pool) and then small steps in containers, with
the pool's prewarm (containers start as soon as the run has a step to compute) and
without it. Needs a Docker engine and the test image:

    python bench/docker_overhead.py [--image TAG] [--steps N] [--sklearn-steps N]
    python bench/docker_overhead.py --against-image OTHER [--rounds 3] ...

Without `--image` it builds (or reuses) the image with `scripts/test-image.sh`. With
`--against-image` it measures only the warm chains, thread and pool, the pool once with
each image (say, one built from another checkout: the container's agent is the image's),
in turn for `--rounds` rounds so that both see the same machine load, and prints the
median of each and the difference.
Target: the warm pool at most 50 ms per small step above the thread executor, and a
scikit-learn step in a warm container no slower than on the host beyond that.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator import step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine
from orchestrator.execution.docker import DockerExecutor
from orchestrator.execution.local import EXECUTORS, Executor
from orchestrator.model.pipeline import Pipeline
from orchestrator.store.metadata import MetadataStore

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.050


@step
def small(xs: list[int] | None = None, i: int = 0) -> list[int]:
    return [*(xs or []), i]


@step
def fit(xs: list[int] | None = None, i: int = 0) -> list[int]:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=200).fit(x[:600], y[:600])
    return [*(xs or []), round(float(model.score(x[600:], y[600:])) * 1000), i]


@step(hints={"executor": "thread"})
def ingest(i: int = 0) -> list[int]:
    time.sleep(0.5)
    return [i]


def chain(fn: Any, n: int, salt: int) -> Pipeline:
    spec = [{"name": "s0", "step": fn, "params": {"i": salt}}]
    spec += [
        {"name": f"s{i}", "step": fn, "inputs": {"xs": f"s{i - 1}"}, "params": {"i": i}}
        for i in range(1, n)
    ]
    return Pipeline.from_spec("docker-bench", spec)


def _factory(artifacts: ArtifactStore, image: str | None, pool: bool) -> Callable[[str], Executor]:
    def make(name: str) -> Executor:
        if name != "docker":
            return EXECUTORS[name](artifacts)
        return DockerExecutor(artifacts, image=image, pool=pool)

    return make


def measure(mode: str, image: str | None, fn: Any, n: int, salt: int) -> tuple[float, float]:
    """Seconds per step of a cold and then a warm chain of `n` steps."""
    tmp = Path(tempfile.mkdtemp(prefix="orch-dbench-"))
    try:
        store = MetadataStore(f"sqlite:///{tmp}/db.sqlite")
        artifacts = ArtifactStore(tmp / "artifacts")
        executor = "thread" if mode == "thread" else "docker"
        engine = Engine(store, artifacts, _factory(artifacts, image, mode == "pool"))
        figures = []
        for run in range(2):
            t0 = time.perf_counter()
            result = engine.run(chain(fn, n, salt + run), target="bench", executor=executor)
            figures.append((time.perf_counter() - t0) / n)
            assert result.status == "succeeded", [(s.name, s.error) for s in result.steps]
        engine.close()
        store.close()
        return figures[0], figures[1]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def table(title: str, image: str, fn: Any, n: int, salt: int) -> None:
    rows = {mode: measure(mode, image, fn, n, salt) for mode in ("thread", "pool", "per-step")}
    base = rows["thread"][1]
    print(f"\n{title}: chain of {n}")
    print(f"{'executor':<10} {'cold s/step':>12} {'warm s/step':>12} {'warm - thread':>14}")
    for mode, (cold, warm) in rows.items():
        print(f"{mode:<10} {cold:12.4f} {warm:12.4f} {warm - base:14.4f}")
    over = rows["pool"][1] - base
    ok = "ok" if over <= TARGET else "MISS"
    print(f"warm pool over thread: {over * 1000:.1f} ms per step (target <= 50 ms: {ok})")


def first_run(image: str, prewarm: bool, salt: int) -> float:
    """Seconds of a fresh engine's first run: a host ingest, then three container steps."""
    tmp = Path(tempfile.mkdtemp(prefix="orch-dbench-"))
    spec = [{"name": "ingest", "step": ingest, "params": {"i": salt}}]
    spec += [
        {"name": f"s{i}", "step": small, "inputs": {"xs": "ingest" if i == 1 else f"s{i - 1}"}}
        for i in range(1, 4)
    ]
    original = DockerExecutor.prewarm
    if not prewarm:
        DockerExecutor.prewarm = Executor.prewarm  # type: ignore[method-assign]
    try:
        store = MetadataStore(f"sqlite:///{tmp}/db.sqlite")
        artifacts = ArtifactStore(tmp / "artifacts")
        engine = Engine(store, artifacts, _factory(artifacts, image, True))
        t0 = time.perf_counter()
        result = engine.run(Pipeline.from_spec("prewarm", spec), target="b", executor="docker")
        took = time.perf_counter() - t0
        assert result.status == "succeeded", [(s.name, s.error) for s in result.steps]
        engine.close()
        store.close()
        return took
    finally:
        DockerExecutor.prewarm = original  # type: ignore[method-assign]
        shutil.rmtree(tmp, ignore_errors=True)


def prewarm_table(image: str, rounds: int) -> None:
    if rounds <= 0:
        print(f"\nfirst run of a fresh engine: skipped (--prewarm-rounds {rounds})")
        return
    figures: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for on in (False, True):
            figures[on].append(first_run(image, on, salt=1000 + 2 * r + on))
    print("\nfirst run of a fresh engine: 0.5 s host ingest, then 3 small container steps")
    print(f"{'prewarm':<10} {'median s':>10} {'runs':>30}")
    for on, runs in figures.items():
        med = sorted(runs)[len(runs) // 2]
        print(f"{'on' if on else 'off':<10} {med:10.3f} {' '.join(f'{x:.3f}' for x in runs):>30}")


def compare(image: str, other: str, fn: Any, n: int, rounds: int, salt: int) -> None:
    """Warm seconds per step: thread, pool with `image`, pool with `other`, in turn."""
    runs: dict[str, list[float]] = {"thread": [], image: [], other: []}
    for r in range(rounds):
        order = [image, other] if r % 2 == 0 else [other, image]
        for which in ["thread", *order]:
            mode = "thread" if which == "thread" else "pool"
            runs[which].append(measure(mode, which, fn, n, salt + 10 * r)[1])
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    print(f"\n{fn.name} steps: chain of {n}, {rounds} rounds, warm s/step")
    for which, figures in runs.items():
        over = (med[which] - med["thread"]) * 1000
        each = " ".join(f"{x:.4f}" for x in figures)
        print(f"{which:<34} median {med[which]:.4f} (+{over:5.1f} ms over thread)  {each}")
    print(f"pool {image} - pool {other}: {(med[image] - med[other]) * 1000:+.1f} ms per step")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--sklearn-steps", type=int, default=4)
    ap.add_argument("--prewarm-rounds", type=int, default=3)
    ap.add_argument("--against-image", metavar="OTHER")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    image = (
        args.image
        or subprocess.run(
            ["bash", str(ROOT / "scripts" / "test-image.sh")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
    )
    print(f"python {sys.version.split()[0]}; image {image}")
    measure("pool", image, small, 2, salt=-10)  # warm the engine connection and page cache
    if args.against_image:
        measure("pool", args.against_image, small, 2, salt=-20)
        compare(image, args.against_image, small, args.steps, args.rounds, salt=1)
        compare(image, args.against_image, fit, args.sklearn_steps, args.rounds, salt=100)
        return
    table("small no-op steps", image, small, args.steps, salt=1)
    table("scikit-learn steps", image, fit, args.sklearn_steps, salt=100)
    prewarm_table(image, args.prewarm_rounds)


if __name__ == "__main__":
    main()
