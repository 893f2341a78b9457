"""Container overhead per step of the Docker executor: start to result, for a small step.

Runs a chain of small no-op steps (a list of ints in, a list out) with each step in its
own container (`--executor docker`), on a fresh SQLite store, and prints the wall time
per step beside the thread executor's. Needs a Docker engine and the test image:

    python bench/docker_overhead.py [--image TAG] [--steps N]

Without `--image` it builds (or reuses) the image with `scripts/test-image.sh`.
Target: at most 1.5 s per step.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator import step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine
from orchestrator.execution.backends import make_executor
from orchestrator.model.pipeline import Pipeline
from orchestrator.store.metadata import MetadataStore

ROOT = Path(__file__).resolve().parents[1]


@step
def small(xs: list[int] | None = None, i: int = 0) -> list[int]:
    return [*(xs or []), i]


def chain(n: int, salt: int) -> object:
    spec = [{"name": "s0", "step": small, "params": {"i": salt}}]
    spec += [
        {"name": f"s{i}", "step": small, "inputs": {"xs": f"s{i - 1}"}, "params": {"i": i}}
        for i in range(1, n)
    ]
    return Pipeline.from_spec("docker-bench", spec)


def measure(executor: str, image: str | None, n: int, salt: int) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="orch-dbench-"))
    try:
        store = MetadataStore(f"sqlite:///{tmp}/db.sqlite")
        artifacts = ArtifactStore(tmp / "artifacts")
        opts = {"image": image, "db_url": store.url}
        engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts, options=opts))
        t0 = time.perf_counter()
        result = engine.run(chain(n, salt), target="bench", executor=executor)
        took = time.perf_counter() - t0
        engine.close()
        store.close()
        assert result.status == "succeeded", [(s.name, s.error) for s in result.steps]
        return took / n
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image")
    ap.add_argument("--steps", type=int, default=8)
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
    print(f"python {sys.version.split()[0]}; image {image}; chain of {args.steps} small steps")
    measure("docker", image, 2, salt=-1)  # warm the engine connection and page cache
    local = measure("thread", None, args.steps, salt=1)
    docker = measure("docker", image, args.steps, salt=2)
    print(f"{'executor':<10} {'s/step':>8}")
    print(f"{'thread':<10} {local:8.4f}")
    ok = "ok" if docker <= 1.5 else "MISS"
    print(
        f"{'docker':<10} {docker:8.3f}   container overhead per step {docker - local:.3f} s "
        f"(target <= 1.5 s: {ok})"
    )


if __name__ == "__main__":
    main()
