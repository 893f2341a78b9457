"""Per-step cost of Dask on workers that share no disk, beside a LocalCluster, in ms/step.

What it measures
    The wall time of `Engine.run` divided by the number of steps, for the no-op steps and
    shapes of `bench/dask_overhead.py` (a chain and a 1 -> N -> 1 fan-out/fan-in; each
    step returns its distinct `i` parameter, so each has its own cache key and its own
    small JSON artifact), first run (every step runs) and cached re-run (every step a
    hit, resolved by the engine without submitting anything), in three set-ups, one run:

    * `local/folder`: a `LocalCluster` (2 worker processes, 1 thread each) with a folder
      artifact store and a SQLite file: what `bench/dask_overhead.py` measures;
    * `local/s3+pg`: the same LocalCluster with the artifacts in S3 (moto's server,
      `scripts/start-s3.sh`) and the metadata in PostgreSQL (`scripts/start-postgres.sh`):
      the cost of the stores alone;
    * `docker/s3+pg`: 2 workers in Docker containers that share no disk with this process
      (`scripts/dask_cluster.py`, the test image, host networking, one thread each), same
      S3 and PostgreSQL: the cluster of tests/integration/test_dask_no_shared_disk.py.

    Each repetition has a fresh database and a fresh artifact prefix (or folder), a new
    executor and Engine. Excluded from ms/step and printed per set-up: making the executor
    (for local, starting the LocalCluster; for docker, connecting to the running cluster
    and checking what the workers see), a 3-step warm-up run (the workers' first imports),
    and closing. Starting the Docker cluster is printed once.

    The workers find the steps as `dask_overhead:noop` (the module next to this file): a
    LocalCluster's worker processes inherit this process's `sys.path`; the containers
    mount `bench/` read-only and have it on their PYTHONPATH.

How to run
    python bench/dask_remote.py                # chain 100, fan 1->100->1, 3 repetitions
    python bench/dask_remote.py --quick        # chain 20, fan 1->20->1, 1 repetition

Needs dockerd with the test image (`scripts/test-image.sh` builds it) and may apt-install
PostgreSQL and pip-install moto through those scripts, as the tests do.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "scripts"))

from dask_cluster import DockerDaskCluster  # noqa: E402
from dask_overhead import PHASES, chain_spec, check, fan_spec, fmt  # noqa: E402

from orchestrator.artifacts.location import open_artifacts  # noqa: E402
from orchestrator.engine.loop import Engine, RunResult  # noqa: E402
from orchestrator.execution.backends import make_executor  # noqa: E402
from orchestrator.model.graph import Graph  # noqa: E402
from orchestrator.model.pipeline import Pipeline  # noqa: E402
from orchestrator.state import StepState  # noqa: E402
from orchestrator.store.metadata import MetadataStore  # noqa: E402

# the image's Python is Debian's 3.11.x, this one may be another 3.11.y: said once here
warnings.filterwarnings("ignore", message="Mismatched versions found")
warnings.filterwarnings("ignore", message="Port 8787 is already in use")

BUCKET = "orch-bench"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "orch-bench",
    "AWS_SECRET_ACCESS_KEY": "orch-bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def script(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / name), *args], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


class Services:
    """PostgreSQL and the S3 server, started (idempotently) by the scripts the tests use."""

    def __init__(self) -> None:
        import boto3
        import psycopg

        self.pg = script("start-postgres.sh", "postgres").rpartition("/")[0]
        env = os.environ | {"ORCH_S3_PYTHON": sys.executable}
        self.s3 = S3_ENV | {"ORCH_S3_ENDPOINT": script("start-s3.sh", env=env)}
        os.environ.update(self.s3)  # this process's object stores read them
        client = boto3.client("s3", endpoint_url=self.s3["ORCH_S3_ENDPOINT"])
        try:
            client.create_bucket(Bucket=BUCKET)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        conninfo = self.pg.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
        self.admin = psycopg.connect(conninfo, autocommit=True)

    def new_db(self) -> str:
        name = f"orch_bench_{uuid.uuid4().hex[:10]}"
        self.admin.execute(f"CREATE DATABASE {name}")
        return f"{self.pg}/{name}"

    def drop_db(self, url: str) -> None:
        self.admin.execute(f"DROP DATABASE IF EXISTS {url.rpartition('/')[2]} WITH (FORCE)")


class Setup:
    """One of the three set-ups; `rep()` makes the stores and executor of a repetition."""

    def __init__(self, name: str, services: Services | None, address: str | None, tmp: str):
        self.name, self.services, self.address, self.tmp = name, services, address, tmp

    def stores(self) -> tuple[str, str, Path | None]:
        if self.services is None:
            folder = Path(tempfile.mkdtemp(prefix="orch-dask-remote-", dir=self.tmp))
            return f"sqlite:///{folder}/orchestrator.db", str(folder / "artifacts"), folder
        return self.services.new_db(), f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}", None


class Rep:
    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.db_url, location, self.folder = setup.stores()
        self.store = MetadataStore(self.db_url)
        self.artifacts = open_artifacts(location)
        t0 = time.perf_counter()
        options = {"db_url": self.db_url, "dask_address": setup.address}
        self.executor = make_executor("dask", self.artifacts, options=options)
        self.start_s = time.perf_counter() - t0
        ex = self.executor
        self.engine = Engine(self.store, self.artifacts, lambda name: ex)
        self.warm_s = self.close_s = 0.0

    def run(self, graph: Graph) -> tuple[float, RunResult]:
        t0 = time.perf_counter()
        result = self.engine.run(graph, target="bench", executor="dask")
        return time.perf_counter() - t0, result

    def close(self) -> None:
        t0 = time.perf_counter()
        self.engine.close()
        self.close_s = time.perf_counter() - t0
        self.store.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        elif self.setup.services is not None:
            self.setup.services.drop_db(self.db_url)


def measure(graph: Graph, setup: Setup, reps: int) -> tuple[list[list[float]], list[Any]]:
    n = len(graph.order)
    times: list[list[float]] = [[], []]
    fixed = []
    for _ in range(reps):
        rep = Rep(setup)
        try:
            warm = Pipeline.from_spec("warm", chain_spec(3, offset=10_000_000))
            rep.warm_s, result = rep.run(warm)
            check(result, 3, StepState.SUCCEEDED)
            for phase, state in enumerate((StepState.SUCCEEDED, StepState.CACHED)):
                t, result = rep.run(graph)
                check(result, n, state)
                times[phase].append(t)
        finally:
            rep.close()
        fixed.append((rep.start_s, rep.warm_s, rep.close_s))
    return times, fixed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, 1 repetition")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 3)")
    ap.add_argument("--tmp", default=tempfile.gettempdir(), help="parent of the folder stores")
    args = ap.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    size = 20 if args.quick else 100
    shapes = [
        (f"chain {size}", Pipeline.from_spec("chain", chain_spec(size))),
        (f"fan 1->{size}->1", Pipeline.from_spec("fan", fan_spec(size))),
    ]
    t_all = time.perf_counter()
    services = Services()
    image = script("test-image.sh")
    t0 = time.perf_counter()
    env = services.s3 | {"PYTHONPATH": str(HERE)}
    cluster = DockerDaskCluster.start(image, workers=2, code=[HERE], env=env)
    cluster_s = time.perf_counter() - t0
    setups = [
        Setup("local/folder", None, None, args.tmp),
        Setup("local/s3+pg", services, None, args.tmp),
        Setup("docker/s3+pg", services, cluster.address, args.tmp),
    ]
    try:
        print(
            f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} CPUs; best (median) of {reps} repetitions, each on fresh "
            f"stores; 2 Dask workers x 1 thread in every set-up; docker cluster started in "
            f"{cluster_s:.1f} s ({image}; its Python {cluster.python()})"
        )
        print("ms/step = wall time of Engine.run / number of steps")
        header = f"{'shape':<16}{'steps':>6}  {'set-up':<14}" + "".join(f"{p:>22}" for p in PHASES)
        header += f"{'executor':>10}{'warm-up':>10}{'close':>8}"
        print(header)
        print("-" * len(header))
        for label, graph in shapes:
            n = len(graph.order)
            firsts = {}
            for setup in setups:
                times, fixed = measure(graph, setup, reps)
                firsts[setup.name] = min(times[0])
                cells = "".join(f"{fmt(t, n):>22}" for t in times)
                start, warm, close = (statistics.median(c) for c in zip(*fixed, strict=True))
                print(
                    f"{label:<16}{n:>6}  {setup.name:<14}{cells}"
                    f"{start:>9.2f}s{warm:>9.2f}s{close:>7.2f}s",
                    flush=True,
                )
            base = firsts["local/folder"]
            ratios = ", ".join(f"{k} {v / base:.2f}x" for k, v in firsts.items() if v != base)
            print(f"{'':<16}{'':>6}  first run vs local/folder: {ratios}")
    finally:
        cluster.stop()
    print(
        "\nexecutor / warm-up / close: median seconds per repetition, not in ms/step "
        "(making the executor, a 3-step run, closing it)"
    )
    print(f"total benchmark time {time.perf_counter() - t_all:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
