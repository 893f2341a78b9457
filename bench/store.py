"""Per-step metadata overhead on PostgreSQL beside SQLite, in milliseconds per step.

What it measures
    The wall time of `Engine.run` divided by the number of steps, for no-op steps (the
    shapes and steps of bench/overhead.py: each step returns its distinct `i`, so each
    has its own cache key and artifact), with the metadata store on SQLite (a file, the
    engine's SQLite fast path) and on PostgreSQL (the pipelined psycopg hot path, over
    TCP on loopback). The artifact store is a local folder in both cases, so the
    difference between the rows is the metadata store. The `store` columns are the part
    of that time spent inside MetadataStore calls (create_run, write, cache_probe,
    cache_prefetch, cache_get, cache_history, finish_run), measured by wrapping them.

    PostgreSQL is measured twice: as configured (`postgresql`: the hot path's rounds
    commit without waiting for the server's WAL flush, the run's creation and end wait
    for it; see store/pgpath.py) and with `synchronous_commit=on` chosen in the URL
    (`pg flushed`: `?options=-csynchronous_commit%3Don`, so every round's commit waits
    for the flush, fsync included), which shows how much of the figure is the server's
    disk rather than the engine's round trips.

    Round trips. After the timed table, one more (untimed) pass per shape counts the
    round trips to PostgreSQL (orchestrator.store.pgtrace: libpq's protocol trace,
    one ReadyForQuery per exchange) in each kind of MetadataStore call: per batch the
    engine writes (one per scheduling round), per cache lookup, and in all per step.

    Shapes: a 100-step chain (one scheduling round, so one transaction, per step) and a
    1 -> 200 -> 1 fan (few, large rounds). Phases:

    * first run: a fresh store (new SQLite file / new PostgreSQL database, migrated
      outside the timed region), empty artifact folder, nothing cached;
    * cached re-run: the same graph again on that store, every step a cache hit.

    Figures are the best (and median) of `--reps` repetitions, each on a fresh store.

How to run
    python bench/store.py                     # PostgreSQL via scripts/start-postgres.sh
    ORCH_BENCH_PG_URL=postgresql+psycopg://orch:orch@127.0.0.1:5432/orch python bench/store.py
    python bench/store.py --quick             # small shapes, 2 repetitions (smoke check)
    python bench/store.py --reps 5 --executor sequential

    ORCH_BENCH_PG_URL names any database on the server that its role can connect to;
    the role needs CREATEDB: each repetition runs in a scratch database `orch_bench_*`
    created next to it and force-dropped afterwards. Without it, the script runs
    scripts/start-postgres.sh (which may apt-install and start PostgreSQL; needs root).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import Spec, chain_spec, check, fan_spec  # noqa: E402

from orchestrator.artifacts.store import ArtifactStore  # noqa: E402
from orchestrator.engine.loop import Engine  # noqa: E402
from orchestrator.execution.local import make_executor  # noqa: E402
from orchestrator.model.graph import Graph  # noqa: E402
from orchestrator.model.pipeline import Pipeline  # noqa: E402
from orchestrator.state import StepState  # noqa: E402
from orchestrator.store.metadata import MetadataStore  # noqa: E402
from orchestrator.store.pgtrace import RoundTrips  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("first run", "cached re-run")


class TimedStore(MetadataStore):
    """A MetadataStore that adds up the time spent in the calls the engine makes, and
    (with `trips` set) the round trips and number of each kind of call."""

    spent = 0.0
    trips: Any = None  # a RoundTrips counter, in the counting pass

    def _timed(self, fn: Any, *args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        before = self.trips.count() if self.trips is not None else 0
        try:
            return fn(*args, **kw)
        finally:
            self.spent += time.perf_counter() - t0
            if self.trips is not None:
                name = fn.__name__
                self.calls[name] = self.calls.get(name, 0) + 1
                self.tripped[name] = self.tripped.get(name, 0) + self.trips.count() - before

    def count_trips(self, trips: Any) -> None:
        self.trips, self.calls, self.tripped = trips, {}, {}

    def create_run(self, *args: Any, **kw: Any) -> None:
        self._timed(super().create_run, *args, **kw)

    def finish_run(self, *args: Any, **kw: Any) -> None:
        self._timed(super().finish_run, *args, **kw)

    def write(self, *args: Any, **kw: Any) -> None:
        self._timed(super().write, *args, **kw)

    def cache_probe(self, *args: Any, **kw: Any) -> Any:
        return self._timed(super().cache_probe, *args, **kw)

    def cache_get(self, *args: Any, **kw: Any) -> Any:
        return self._timed(super().cache_get, *args, **kw)

    def cache_prefetch(self, *args: Any, **kw: Any) -> Any:
        return self._timed(super().cache_prefetch, *args, **kw)

    def cache_history(self, *args: Any, **kw: Any) -> Any:
        return self._timed(super().cache_history, *args, **kw)


# -- databases ----------------------------------------------------------------------------


def pg_base_url() -> str:
    """A PostgreSQL URL from ORCH_BENCH_PG_URL, else from scripts/start-postgres.sh."""
    url = os.environ.get("ORCH_BENCH_PG_URL")
    if url:
        return url
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "start-postgres.sh"), "postgres"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"scripts/start-postgres.sh failed:\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


def _conninfo(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def scratch_pg(base: str) -> Iterator[str]:
    """A fresh database on the server of `base`, dropped afterwards; its URL."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"orch_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_conninfo(base), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_conninfo(base), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def fresh_url(backend: str, tmp: Path, pg_base: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'orchestrator.db'}"
    else:
        with scratch_pg(pg_base) as url:
            yield url + FLUSH_OPTION if backend == "pg flushed" else url


BACKENDS = ("sqlite", "postgresql", "pg flushed")
FLUSH_OPTION = "?options=-csynchronous_commit%3Don"
RATIO_LABELS = {"postgresql": "pg/sqlite", "pg flushed": "flushed/sqlite"}


# -- measurement --------------------------------------------------------------------------


def measure(
    graph: Graph, backend: str, executor: str, reps: int, pg_base: str
) -> list[list[tuple[float, float]]]:
    """(wall seconds, seconds in the store) per phase and repetition."""
    times: list[list[tuple[float, float]]] = [[] for _ in PHASES]
    for _ in range(reps):
        for phase, (wall, store) in enumerate(one_store(graph, backend, executor, pg_base)):
            times[phase].append((wall, store.spent))
    return times


def one_store(
    graph: Graph, backend: str, executor: str, pg_base: str, trips: bool = False
) -> Iterator[tuple[float, TimedStore]]:
    """Each phase on one fresh store: (wall seconds, the store after the phase)."""
    n = len(graph.order)
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-store-"))
    try:
        with fresh_url(backend, tmp, pg_base) as url:
            store = TimedStore(url)  # migrated here, outside the timed region
            counter = RoundTrips(store.engine) if trips else None
            artifacts = ArtifactStore(tmp / "artifacts")
            engine = Engine(store, artifacts, lambda name, a=artifacts: make_executor(name, a))
            try:
                for state in (StepState.SUCCEEDED, StepState.CACHED):
                    gc.collect()
                    store.spent = 0.0
                    if counter is not None:
                        store.count_trips(counter)
                    t0 = time.perf_counter()
                    result = engine.run(graph, target="bench", executor=executor)
                    wall = time.perf_counter() - t0
                    check(result, n, state)
                    yield wall, store
            finally:
                engine.close()
                store.close()
                if counter is not None:
                    counter.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def print_trips(specs: list[tuple[str, Spec]], executor: str, pg_base: str) -> None:
    """Round trips to PostgreSQL per kind of store call, one untimed pass per shape."""
    print("\nround trips to PostgreSQL (libpq trace), per call: calls x round trips each")
    kinds = ("write", "cache_probe", "cache_prefetch", "create_run", "finish_run")
    header = f"{'shape':<15}{'phase':<15}" + "".join(f"{k:>16}" for k in kinds) + "  per step"
    print(header)
    print("-" * len(header))
    for label, spec in specs:
        graph = Pipeline.from_spec(label.split()[0], spec)
        runs = one_store(graph, "postgresql", executor, pg_base, trips=True)
        for phase, (_, store) in zip(PHASES, runs, strict=True):
            cells = []
            for k in kinds:
                calls, trips = store.calls.get(k, 0), store.tripped.get(k, 0)
                cells.append(f"{calls} x {trips / calls:.2f}" if calls else "-")
            total = sum(store.tripped.values()) / len(graph.order)
            row = "".join(f"{c:>16}" for c in cells)
            print(f"{label:<15}{phase:<15}{row}{total:>10.2f}")


def cell(samples: list[tuple[float, float]], n: int) -> tuple[str, float]:
    walls = [w * 1e3 / n for w, _ in samples]
    stores = [s * 1e3 / n for _, s in samples]
    best = min(walls)
    return f"{best:7.3f} ({statistics.median(walls):7.3f}) {min(stores):7.3f}", best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="chain 20 and fan 1->50->1, 2 reps")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 3)")
    ap.add_argument("--executor", default="thread", help="thread (default) or sequential")
    args = ap.parse_args(argv)
    reps = args.reps or (2 if args.quick else 3)
    specs: list[tuple[str, Spec]] = (
        [("chain 20", chain_spec(20)), ("fan 1->50->1", fan_spec(50))]
        if args.quick
        else [("chain 100", chain_spec(100)), ("fan 1->200->1", fan_spec(200))]
    )
    pg_base = pg_base_url()
    from sqlalchemy.engine import make_url

    shown = make_url(pg_base).render_as_string(hide_password=True)
    print(
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; executor {args.executor}; PostgreSQL at {shown}"
    )
    print(
        f"ms/step = wall time of Engine.run / steps: best (median) of {reps}, each on a "
        "fresh store; then the best time inside MetadataStore calls"
    )
    warm = Pipeline.from_spec("warm", chain_spec(3))
    for backend in BACKENDS:  # imports, dialect setup, code fingerprints
        measure(warm, backend, args.executor, 1, pg_base)

    header = f"{'shape':<15}{'steps':>6}  {'store':<11}" + "".join(
        f"{p + ' (store)':>32}" for p in PHASES
    )
    print(header)
    print("-" * len(header))
    t_start = time.perf_counter()
    for label, spec in specs:
        graph = Pipeline.from_spec(label.split()[0], spec)
        n = len(graph.order)
        best: dict[str, list[float]] = {}
        for backend in BACKENDS:
            times = measure(graph, backend, args.executor, reps, pg_base)
            cells = [cell(samples, n) for samples in times]
            best[backend] = [b for _, b in cells]
            print(f"{label:<15}{n:>6}  {backend:<11}" + "".join(f"{c:>32}" for c, _ in cells))
        for backend in BACKENDS[1:]:
            ratios = "".join(
                f"{f'x{p / s:.2f}':>32}" for s, p in zip(best["sqlite"], best[backend], strict=True)
            )
            print(f"{'':<15}{'':>6}  {RATIO_LABELS[backend]:<11}{ratios}", flush=True)
    print(f"total benchmark time {time.perf_counter() - t_start:.1f} s")
    print_trips(specs, args.executor, pg_base)


if __name__ == "__main__":
    sys.exit(main())
