"""Prediction server latency and throughput on loopback, and failures during a hot swap.

What it measures
    The state is made as a user makes it: `orch run classification` into a temporary
    ORCH_HOME registers `iris-classifier` v1 (production); a second run with `C=0.05`
    registers v2 (v1 is made production again if the deploy step promoted v2). The server
    is `orchestrator.serving.server.serve` in a subprocess (one uvicorn worker, loopback, poll
    interval 0.2 s, request log on). The load generator is this process: N concurrent
    keep-alive HTTP/1.1 connections (asyncio streams, a minimal client so that the
    client's own cost stays small; `--client httpx` uses one thread per connection with
    `httpx.Client` instead), each sending single-row `POST /predict` requests back to
    back (closed loop) for `--seconds`.

    Phase 1, steady state: requests/s, p50, p90, p99, max latency, failures.
    Phase 2, hot swap: the same load; after a third of the time v2 is promoted through
    the registry; the server swaps at its next poll. Reported: failures, how many answers
    came from each version, latency percentiles across the whole phase.

    The client and the server share the machine's cores, so on a small machine the
    figures include the load generator's CPU use.

How to run
    python bench/serving.py                    # 16 connections, 10 s steady + 6 s swap
    python bench/serving.py --connections 4 --seconds 5
    python bench/serving.py --client httpx     # threads with httpx.Client keep-alive

Targets printed next to the figures: p50 < 5 ms, p99 < 20 ms, zero failures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

MODEL = "iris-classifier"
ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}
SERVER = """
import sys
from pathlib import Path
from orchestrator.cli.app import Env
from orchestrator.serving.server import serve
serve(Env().registry(), sys.argv[1], port=int(sys.argv[2]), poll_interval=0.2,
      request_log=Path(sys.argv[3]))
"""


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    versions: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def answer(self, started: float, status: int, body: bytes) -> None:
        self.latencies.append(time.perf_counter() - started)
        if status != 200:
            self.failures.append(f"{status} {body[:200]!r}")
            return
        version = json.loads(body)["version"]
        self.versions[version] = self.versions.get(version, 0) + 1


# -- setup -------------------------------------------------------------------------------


def orch(env: dict[str, str], *args: str) -> None:
    cmd = [sys.executable, "-m", "orchestrator", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")


def registry(home: Path) -> object:
    from orchestrator.artifacts.store import ArtifactStore
    from orchestrator.store.metadata import MetadataStore
    from orchestrator.store.registry import StoreRegistry

    return StoreRegistry(
        MetadataStore(f"sqlite:///{home / 'orchestrator.db'}"), ArtifactStore(home / "artifacts")
    )


def prepare(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["ORCH_HOME"] = str(home)
    orch(env, "run", "classification", "--json")
    orch(env, "run", "classification", "--json", "--param", "C=0.05")
    reg = registry(home)
    if reg.production(MODEL).version != 1:  # type: ignore[attr-defined]
        reg.promote(MODEL, 1, "bench: start from v1")  # type: ignore[attr-defined]
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], home: Path, port: int) -> subprocess.Popen[bytes]:
    log = home / "requests.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, MODEL, str(port), str(log)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(home / "server.err", "wb"),  # noqa: SIM115 - the child keeps it
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("the server did not start:\n" + (home / "server.err").read_text()[-2000:])


# -- load generators ---------------------------------------------------------------------


def request_bytes(port: int) -> bytes:
    body = json.dumps(ROW).encode()
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(port: int, until: float, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = request_bytes(port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            tally.answer(started, status, await reader.readexactly(length))
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        tally.failures.append(repr(exc))
    finally:
        writer.close()


async def _asyncio_load(port: int, connections: int, seconds: float, tally: Tally) -> None:
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_connection(port, until, tally) for _ in range(connections)))


def _httpx_worker(url: str, until: float, tally: Tally) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                res = http.post("/predict", json=ROW)
            except httpx.HTTPError as exc:
                tally.failures.append(repr(exc))
                continue
            tally.answer(started, res.status_code, res.content)


def _httpx_load(port: int, connections: int, seconds: float, tally: Tally) -> None:
    until = time.perf_counter() + seconds
    url = f"http://127.0.0.1:{port}"
    threads = [
        threading.Thread(target=_httpx_worker, args=(url, until, tally)) for _ in range(connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 30)


def load(client: str, port: int, connections: int, seconds: float) -> tuple[Tally, float]:
    tally = Tally()
    started = time.perf_counter()
    if client == "httpx":
        _httpx_load(port, connections, seconds, tally)
    else:
        asyncio.run(_asyncio_load(port, connections, seconds, tally))
    return tally, time.perf_counter() - started


# -- report ------------------------------------------------------------------------------


def report(title: str, tally: Tally, wall: float) -> None:
    lat = sorted(tally.latencies)
    if not lat:
        print(f"{title}: no answers; failures: {tally.failures[:3]}")
        return
    q = statistics.quantiles(lat, n=100, method="inclusive")
    ms = [v * 1e3 for v in (q[49], q[89], q[98], lat[-1])]
    print(
        f"{title}: {len(lat) / wall:8.0f} req/s  p50 {ms[0]:.2f} ms  p90 {ms[1]:.2f} ms  "
        f"p99 {ms[2]:.2f} ms  max {ms[3]:.2f} ms  answers {len(lat)}  "
        f"failures {len(tally.failures)}  versions {dict(sorted(tally.versions.items()))}"
    )
    for failure in tally.failures[:5]:
        print(f"    failure: {failure}")


def swap_phase(args: argparse.Namespace, home: Path, port: int) -> None:
    def promote() -> None:
        time.sleep(args.swap_seconds / 3)
        registry(home).promote(MODEL, 2, "bench: hot swap")  # type: ignore[attr-defined]

    promoter = threading.Thread(target=promote)
    promoter.start()
    tally, wall = load(args.client, port, args.connections, args.swap_seconds)
    promoter.join()
    report("hot swap ", tally, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--swap-seconds", type=float, default=6.0)
    parser.add_argument("--client", choices=["asyncio", "httpx"], default="asyncio")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, client {args.client}, ")
    print(f"{args.connections} connections; targets: p50 < 5 ms, p99 < 20 ms, 0 failures")
    with tempfile.TemporaryDirectory(prefix="orch-bench-serving-") as tmp:
        home = Path(tmp)
        env = prepare(home)
        port = free_port()
        server = start_server(env, home, port)
        try:
            load(args.client, port, args.connections, 1.0)  # warm-up
            tally, wall = load(args.client, port, args.connections, args.seconds)
            report("steady   ", tally, wall)
            swap_phase(args, home, port)
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
