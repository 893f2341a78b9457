"""A Dask cluster in Docker containers that share no disk with this machine.

One container runs `dask scheduler`, one per worker runs `dask worker` (one thread, no
nanny, so `docker kill` of a worker is the death of the process that runs the step). All
of them use the host's network, so the scheduler listens on 127.0.0.1 and the workers
reach PostgreSQL and an object store on loopback; none of them mounts anything but the
folders given as `code` (read-only, at the same path, so a step referenced as
`/path/file.py:name` resolves there). ORCH_HOME and a folder artifact store stay
invisible to the workers. The image is the test image (`scripts/test-image.sh`), which
has the project installed with its `dask` and `postgres` extras.

As a module (the integration tests' fixture, bench/dask_remote.py)::

    cluster = DockerDaskCluster.start(image, workers=2, code=[folder], env={...})
    cluster.address; cluster.kill_worker(0); cluster.restart_worker(0); cluster.stop()

As a command::

    python scripts/dask_cluster.py up IMAGE [--workers 2] [--code DIR] [--name PREFIX]
    python scripts/dask_cluster.py down [--name PREFIX]

`up` prints the scheduler's address once every worker has joined.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

JOIN_TIMEOUT = 90.0  # seconds for the containers to start and the workers to join


def _docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DockerDaskCluster:
    """A scheduler container and worker containers named `<prefix>-scheduler`, `<prefix>-w<i>`."""

    def __init__(self, prefix: str, image: str, address: str, workers: int) -> None:
        self.prefix, self.image, self.address, self.n_workers = prefix, image, address, workers
        self._common: list[str] = []  # the `docker run` options every container gets

    @classmethod
    def start(
        cls,
        image: str,
        *,
        workers: int = 2,
        code: Iterable[Path] = (),
        env: Mapping[str, str] | None = None,
        prefix: str | None = None,
    ) -> DockerDaskCluster:
        prefix = prefix or f"orch-dask-{uuid.uuid4().hex[:8]}"
        address = f"tcp://127.0.0.1:{_free_port()}"
        cluster = cls(prefix, image, address, workers)
        common = ["--network", "host", "--label", f"orch-dask={prefix}"]
        for folder in code:
            path = str(Path(folder).resolve())
            common += ["-v", f"{path}:{path}:ro"]
        for key, value in (env or {}).items():
            common += ["-e", f"{key}={value}"]
        cluster._common = common
        try:
            port = address.rsplit(":", 1)[1]
            _docker(
                "run", "-d", "--name", f"{prefix}-scheduler", *common, image,
                "dask", "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard",
            )  # fmt: skip
            for i in range(workers):
                cluster._run_worker(i)
            cluster.wait_for_workers(workers)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def worker_name(self, i: int) -> str:
        return f"{self.prefix}-w{i}"

    def _run_worker(self, i: int) -> None:
        _docker(
            "run", "-d", "--name", self.worker_name(i), *self._common, self.image,
            "dask", "worker", self.address, "--name", f"w{i}", "--nthreads", "1",
            "--no-nanny", "--host", "127.0.0.1", "--no-dashboard",
        )  # fmt: skip

    def containers(self) -> list[str]:
        return [f"{self.prefix}-scheduler"] + [self.worker_name(i) for i in range(self.n_workers)]

    def logs(self) -> str:
        parts = []
        for name in self.containers():
            proc = subprocess.run(["docker", "logs", "--tail", "40", name], capture_output=True)
            text = (proc.stdout + proc.stderr).decode(errors="replace")
            parts.append(f"--- {name} ---\n{text}")
        return "\n".join(parts)

    def _running(self) -> set[str]:
        out = _docker("ps", "--filter", f"label=orch-dask={self.prefix}", "--format", "{{.Names}}")
        return set(out.split())

    def workers(self) -> dict[str, str]:
        """The joined workers: `name` (w0, w1, ...) -> address."""
        from distributed import Client

        with Client(self.address, timeout=10) as client:
            info = client.scheduler_info(n_workers=-1)["workers"]
        return {w["name"]: addr for addr, w in info.items()}

    def python(self) -> str:
        """The Python version in the image (Debian's, e.g. 3.11.2)."""
        return _docker("exec", f"{self.prefix}-scheduler", "python", "-c",
                       "import platform; print(platform.python_version())")  # fmt: skip

    def wait_for_workers(self, n: int, timeout: float = JOIN_TIMEOUT) -> None:
        """Until `n` workers have joined; a container that exits meanwhile is an error."""
        from distributed import Client

        deadline = time.monotonic() + timeout
        client = None
        try:
            while True:
                gone = set(self.containers()) - self._running()
                if gone:
                    raise RuntimeError(f"container {sorted(gone)[0]} exited\n{self.logs()}")
                try:
                    client = client or Client(self.address, timeout=5)
                    if len(client.scheduler_info(n_workers=-1)["workers"]) >= n:
                        return
                except (OSError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{n} Dask workers did not join {self.address} in {timeout:g}s\n"
                        + self.logs()
                    )
                time.sleep(0.2)
        finally:
            if client is not None:
                client.close()

    def kill_worker(self, i: int) -> None:
        """`docker kill`: SIGKILL to the worker process, mid-step or not."""
        _docker("kill", self.worker_name(i))

    def restart_worker(self, i: int) -> None:
        """Start a killed worker's container again and wait until it has joined."""
        _docker("start", self.worker_name(i))
        self.wait_for_workers(self.n_workers)

    def stop(self) -> None:
        names = _docker("ps", "-aq", "--filter", f"label=orch-dask={self.prefix}", check=False)
        if names:
            _docker("rm", "-f", *names.split(), check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/dask_cluster.py")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a scheduler and workers; print the address")
    up.add_argument("image")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--code", action="append", type=Path, default=[])
    up.add_argument("--name", default="orch-dask")
    down = sub.add_parser("down", help="remove the containers of a cluster")
    down.add_argument("--name", default="orch-dask")
    args = parser.parse_args(argv)
    if args.cmd == "up":
        cluster = DockerDaskCluster.start(
            args.image, workers=args.workers, code=args.code, prefix=args.name
        )
        print(cluster.address)
    else:
        DockerDaskCluster(args.name, "", "", 0).stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
