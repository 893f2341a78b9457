"""Runs as experiments: how long the runs table (sorted by a metric, filtered by a
parameter) and a 5-run comparison take on a store of many tracked runs.

What it measures
    Fill: a fresh metadata store (a temporary SQLite file, or the empty database of
    `--db-url`) gets its schema from the project's migrations, then `--runs` runs
    (default 100,000) are bulk inserted through SQLAlchemy Core into the project's tables:
    each run with a parameter `C` (one of 10 values), `--steps` step runs (default 20:
    train, evaluate, deploy, step3, ..., with params, inputs and a cache entry each) and 5 metrics
    (`m0`..`m4`, logged by `evaluate`) plus a 4-point `loss` series. Reported: the fill.

    Timing: each query runs `--repeat` times (default 10) after one warm-up, in this
    process, through `orchestrator.experiments.query` and `orchestrator.compare.compare`
    (what `orch runs` and `orch compare` call), over a `MetadataStore` on that database:
    the newest 20 runs sorted by `-m0`; the runs with `C=1` (10 %), newest 20; and five
    runs compared. Then the same three as UI pages (`/experiments?sort=-m0`,
    `/experiments?filter=C=1`, 100 rows each as the page shows by default, and
    `/compare?runs=...`), requested through an in-process HTTP client of the UI app.
    Reported per query: median and p95 (nearest rank) in milliseconds.

    The sort reads `run_metric_summary` (kept by triggers as the metric rows go in, so the
    fill pays for it); a store filled before migration 0010 gets it from the backfill.

How to run
    python bench/experiments.py                        # SQLite, 100,000 runs x 20 steps
    python bench/experiments.py --db-url URL --no-fill # time a store filled before
    python bench/experiments.py --runs 2000 --repeat 5 # a quick check
    python bench/experiments.py --db-url postgresql+psycopg://orch:orch@127.0.0.1:5432/x
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from orchestrator.compare import compare
from orchestrator.experiments import query
from orchestrator.store import schema as t
from orchestrator.store.metadata import MetadataStore

STEPS = ("train", "evaluate", "deploy")


def _run_rows(i: int, start: dt.datetime, steps: int) -> dict[str, list[dict[str, Any]]]:
    rid = f"r{i:011d}"
    c = float(i % 10)
    when = start + dt.timedelta(seconds=i)
    out: dict[str, list[dict[str, Any]]] = {"runs": [], "step_runs": [], "cache_entries": []}
    out["run_metrics"], out["run_params"] = [], []
    out["runs"].append(
        {"id": rid, "pipeline": "exp", "target": "exp.py:exp", "status": "succeeded",
         "params": {"C": c}, "executor": "thread", "started_at": when, "ended_at": when,
         "trigger": {"kind": "manual"}}
    )  # fmt: skip
    for s in range(steps):
        name = STEPS[s] if s < len(STEPS) else f"step{s}"
        key = f"{i:030d}{s:02d}"
        out["step_runs"].append(
            {"run_id": rid, "name": name, "kind": "custom", "state": "succeeded",
             "attempts": 1, "started_at": when, "ended_at": when, "duration": 0.1,
             "cache_key": key, "reason": {"cache": "miss"}, "params": {"C": c},
             "inputs": {"x": f"{i:032x}"}, "outputs": []}
        )  # fmt: skip
        out["cache_entries"].append(
            {"cache_key": key, "pipeline": "exp", "step": name, "outputs": [],
             "code": {f"function exp.{name}": "abc"}, "params": {"C": c},
             "inputs": {"x": f"{i:032x}"}, "run_id": rid, "created_at": when}
        )  # fmt: skip
    for m in range(5):
        out["run_metrics"].append(
            {"run_id": rid, "step": "evaluate", "name": f"m{m}", "position": None,
             "value": random.random(), "logged_at": when}
        )  # fmt: skip
    for p in range(4):
        out["run_metrics"].append(
            {"run_id": rid, "step": "train", "name": "loss", "position": p,
             "value": 1 / (p + 1 + c), "logged_at": when}
        )  # fmt: skip
    out["run_params"].append({"run_id": rid, "step": "train", "name": "tag", "data": "bench"})
    return out


def fill(store: MetadataStore, runs: int, steps: int) -> float:
    t0 = time.perf_counter()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for lo in range(0, runs, 1000):
        rows: dict[str, list[dict[str, Any]]] = {}
        for i in range(lo, min(runs, lo + 1000)):
            for table, new in _run_rows(i, start, steps).items():
                rows.setdefault(table, []).extend(new)
        with store.tx() as conn:
            for table in ("runs", "step_runs", "cache_entries", "run_metrics", "run_params"):
                conn.execute(insert(t.metadata.tables[table]), rows[table])
    return time.perf_counter() - t0


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * len(times)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--db-url", default=None)
    ap.add_argument("--no-fill", action="store_true", help="time a store filled before")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-experiments-"))
    url = args.db_url or f"sqlite:///{folder / 'orchestrator.db'}"
    store = MetadataStore(url)
    if not args.no_fill:
        took = fill(store, args.runs, args.steps)
        print(f"fill: {args.runs} runs x {args.steps} steps, 9 metric rows each: {took:.1f} s")
    five = [f"r{i:011d}" for i in range(args.runs - 5, args.runs)]
    cases: dict[str, Callable[[], Any]] = {
        "runs sorted by -m0 (newest 20)": lambda: query(store, sort="-m0", limit=20),
        "runs with C=1 (newest 20)": lambda: query(store, filters=["C=1"], limit=20),
        "compare 5 runs": lambda: compare(store, five),
    }
    cases |= pages(store, folder, five)
    for label, fn in cases.items():
        median, p95 = timed(fn, args.repeat)
        print(f"{label:34s} median {median:8.1f} ms   p95 {p95:8.1f} ms")
    store.close()


def pages(store: MetadataStore, folder: Path, five: list[str]) -> dict[str, Callable[[], Any]]:
    """The UI's experiments and compare pages, each a GET that must answer 200."""
    from fastapi.testclient import TestClient

    from orchestrator.artifacts.store import ArtifactStore
    from orchestrator.ui.app import create_app

    app = create_app(store, ArtifactStore(folder / "artifacts"), home=folder)
    client = TestClient(app)

    def get(path: str) -> Callable[[], Any]:
        def fetch() -> None:
            res = client.get(path)
            if res.status_code != 200:
                raise SystemExit(f"error: GET {path} answered {res.status_code}")

        return fetch

    return {
        "page /experiments?sort=-m0 (100)": get("/experiments?sort=-m0"),
        "page /experiments?filter=C=1 (100)": get("/experiments?filter=C%3D1"),
        "page /compare (5 runs)": get(f"/compare?runs={','.join(five)}"),
    }


if __name__ == "__main__":
    main()
