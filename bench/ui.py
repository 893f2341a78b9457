"""Web UI response times on a store of 10,000 runs of a 20-step pipeline.

What it measures
    Fill: a fresh metadata store (a temporary state folder with its SQLite file, or the
    empty database of `--db-url`) gets its schema from the project's own `connect` and
    Alembic migrations, then `--runs` runs (default 10,000) of a 20-step pipeline, bulk
    inserted through SQLAlchemy Core into the project's tables: the runs, their step runs
    (200,000 rows), the artifacts their steps wrote, the pipelines and a few hundred model
    versions. The rows look like the engine's: run states succeeded / failed /
    interrupted; step states succeeded, cached, failed, skipped (downstream of a failure)
    and pending (after an interruption); cache reasons (miss, changed parameter, hit from
    an earlier run), step params, input and output hashes, logs of a few lines, tracebacks
    of failed steps; manual, schedule and event triggers; start times spread over six
    months. Three pipelines share the 20-step graph (`churn` 70 % of the runs, `forecast`
    25 %, `fraud` 5 %); their target is a real pipeline file written next to the store,
    so a UI that loads the pipeline to draw its graph can. Reported: the fill time.

    Timing: the real `orch ui --port 0` is started on that store (read-only, no token),
    and each URL is requested `--repeat` times (default 30) after `--warmup` requests,
    round-robin over the URLs, one keep-alive HTTP/1.1 connection (stdlib http.client).
    TTFB is the time from sending the request until the status line and headers are
    read; total is until the last byte of the body. Reported per URL: the first request's
    TTFB (cold: the server has not yet loaded the pipeline file nor warmed its caches),
    median and p95 (nearest rank) of both over the timed requests, the body size, and
    `ok` when the median and p95 TTFB are within the 200 ms target. The URLs: the runs
    list, its page 50, filtered by status (15 % of the runs) and by pipeline (`fraud`,
    5 %), a failed run's page and its JSON, and one model's page.

How to run
    python bench/ui.py                         # SQLite, 10,000 runs, 30 requests per URL
    python bench/ui.py --runs 2000 --repeat 10 # a quick check
    python bench/ui.py --fill-only --keep /tmp/ui-store   # fill a store and keep it
    python bench/ui.py --reuse /tmp/ui-store               # time the UI on it again
    python bench/ui.py --db-url postgresql+psycopg://orch:orch@127.0.0.1:5432/orch_ui
    python bench/ui.py --reuse /tmp/ui-store --only status= --py-spy /tmp/ui.txt

    `--db-url` must name an empty database (no runs yet); the pipeline file and the
    artifact folder still go to a temporary state folder. On PostgreSQL the fill ends
    with `ANALYZE`, as autovacuum would soon after a bulk load (`--no-analyze` times the
    UI on a database without statistics). `--py-spy FILE` records the server's stacks
    (py-spy, every thread; `pip install py-spy`) while it is timed: a flame graph for
    `.svg`, speedscope for `.json`, else collapsed stacks (one `frame;frame;... count`
    per line, for grep). `--only TEXT` times only the URLs containing TEXT.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, insert, select, text

from orchestrator.store import schema as t
from orchestrator.store.db import connect, migrate

TARGET_MS = 200.0
PIPELINES = {"churn": 0.70, "forecast": 0.25, "fraud": 0.05}
RUN_STATUS = {"succeeded": 0.80, "failed": 0.15, "interrupted": 0.05}
HOSTS = ("train-01", "train-02", "ci-runner")  # not this machine: no stale-run refresh
CHUNK = 500  # runs per INSERT batch

# The 20 steps: (name, kind, upstream steps). Each upstream step's output feeds an
# input named after it; ingest, train and deploy steps take parameters.
STEPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ingest_orders", "ingest", ()),
    ("ingest_customers", "ingest", ()),
    ("ingest_events", "ingest", ()),
    ("validate_orders", "validate", ("ingest_orders",)),
    ("validate_customers", "validate", ("ingest_customers",)),
    ("validate_events", "validate", ("ingest_events",)),
    ("join_orders", "feature", ("validate_orders", "validate_customers")),
    ("sessionize", "feature", ("validate_events",)),
    ("order_features", "feature", ("join_orders",)),
    ("customer_features", "feature", ("join_orders",)),
    ("event_features", "feature", ("sessionize",)),
    ("assemble", "feature", ("order_features", "customer_features", "event_features")),
    ("split", "feature", ("assemble",)),
    ("train_gbm", "train", ("split",)),
    ("train_logreg", "train", ("split",)),
    ("evaluate_gbm", "evaluate", ("train_gbm", "split")),
    ("evaluate_logreg", "evaluate", ("train_logreg", "split")),
    ("select_model", "evaluate", ("evaluate_gbm", "evaluate_logreg")),
    ("drift_report", "evaluate", ("assemble",)),
    ("deploy", "deploy", ("select_model", "drift_report")),
)
STEP_PARAMS = {"ingest": ("days", "region"), "train": ("lr",), "deploy": ("region",)}
PARAM_TYPES = {"days": "int", "region": "str", "lr": "float"}
OUT_TYPES = {
    "ingest": ("parquet", "pandas:DataFrame"),
    "validate": ("parquet", "pandas:DataFrame"),
    "feature": ("parquet", "pandas:DataFrame"),
    "train": ("joblib", "sklearn.pipeline:Pipeline"),
    "evaluate": ("pydantic", "orchestrator.steps.evaluate:EvalReport"),
    "deploy": ("pydantic", "orchestrator.steps.deploy:DeployDecision"),
}
LOG_LINES = {
    "ingest": ("reading partition day={day} region={region}", "ingested rows={rows} columns=42"),
    "validate": ("checks passed: 12 checks on {rows} rows failed=[]",),
    "feature": ("built features rows={rows} columns={cols}", "dropped null rows={nulls}"),
    "train": ("fitting lr={lr} rows={rows}", "epoch 10 loss={loss:.4f}", "trained model"),
    "evaluate": ("evaluated metric='auc' value={auc:.4f} champion_version={champ}",),
    "deploy": ("deploy decision promoted={promoted} reason='beats champion by margin'",),
}


# -- the pipeline file ------------------------------------------------------------------
def pipeline_source() -> str:
    """A real pipeline file with the 20 steps and the three pipelines (no-op steps)."""
    out = ["from orchestrator import pipeline, step", ""]
    for name, kind, ups in STEPS:
        args = [f"{u}: int" for u in ups]
        args += [f"{p}: {PARAM_TYPES[p]}" for p in STEP_PARAMS.get(kind, ())]
        out += ["", f'@step(kind="{kind}")', f"def {name}({', '.join(args)}) -> int:"]
        out += [f"    return {' + '.join(ups) or '0'}", ""]
    out += ["", "def _wire(days: int, region: str, lr: float) -> None:"]
    for name, kind, ups in STEPS:  # each output is held in `<step>_`
        kw = [f"{u}_" for u in ups] + [f"{p}={p}" for p in STEP_PARAMS.get(kind, ())]
        out.append(f"    {name}_ = {name}({', '.join(kw)})")
    for name in PIPELINES:
        out += ["", "", "@pipeline"]
        out += [f'def {name}(days: int = 30, region: str = "eu", lr: float = 0.1):']
        out += ["    _wire(days, region, lr)"]
    return "\n".join(out) + "\n"


# -- the rows ---------------------------------------------------------------------------
@dataclass
class Filler:
    """Makes the rows of runs, step runs, artifacts and model versions, run by run."""

    rng: random.Random
    target_file: Path
    now: dt.datetime
    span: dt.timedelta = dt.timedelta(days=180)
    last: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    model_rows: list[dict[str, Any]] = field(default_factory=list)
    failed_ids: list[str] = field(default_factory=list)

    def hexid(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def pick(self, weights: dict[str, float]) -> str:
        return self.rng.choices(list(weights), list(weights.values()))[0]

    def run(self, i: int, n: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rng = self.rng
        pipe = self.pick(PIPELINES)
        status = self.pick(RUN_STATUS)
        run_id = self.hexid(12)
        start = self.now - self.span + self.span * (i / n) + dt.timedelta(seconds=rng.random())
        params = {"days": 30, "region": "eu", "lr": 0.1}  # mostly the defaults
        if rng.random() < 0.3:
            params = {
                "days": rng.choice((7, 30, 90)),
                "region": rng.choice(("eu", "us", "apac")),
                "lr": rng.choice((0.01, 0.05, 0.1, 0.3)),
            }
        steps, end = self.steps(run_id, pipe, status, params, start)
        run = {
            "id": run_id,
            "pipeline": pipe,
            "target": f"{self.target_file}:{pipe}",
            "status": status,
            "params": params,
            "executor": rng.choice(("thread", "thread", "process", "dask")),
            "started_at": start,
            "ended_at": end,
            "host": rng.choice(HOSTS),
            "pid": rng.randint(1000, 60000),
            "resumed_from": rng.choice(self.failed_ids[-5:])
            if self.failed_ids and rng.random() < 0.03
            else None,
            "trigger": self.trigger(start),
            "error": "the runner process died" if status == "interrupted" else None,
        }
        if status == "failed":
            self.failed_ids.append(run_id)
        return run, steps

    def trigger(self, start: dt.datetime) -> dict[str, Any]:
        r = self.rng.random()
        if r < 0.3:
            return {"kind": "manual"}
        if r < 0.8:
            tick = start.replace(minute=0, second=0, microsecond=0)
            return {
                "kind": "schedule",
                "schedule": "nightly",
                "run_key": f"nightly@{tick.isoformat()}",
                "scheduled_time": tick.isoformat(),
            }
        return {
            "kind": "event",
            "event": "new-data",
            "event_id": self.rng.randint(1, 5000),
            "trigger": "on-data",
        }

    def steps(
        self,
        run_id: str,
        pipe: str,
        status: str,
        params: dict[str, Any],
        start: dt.datetime,
    ) -> tuple[list[dict[str, Any]], dt.datetime]:
        rng = self.rng
        broken = rng.randrange(3, len(STEPS)) if status != "succeeded" else None
        down: set[str] = set()
        outputs: dict[str, str] = {}
        clock, rows = start + dt.timedelta(seconds=0.05), []
        for idx, (name, kind, ups) in enumerate(STEPS):
            sp = {p: params[p] for p in STEP_PARAMS.get(kind, ())}
            row: dict[str, Any] = {"run_id": run_id, "name": name, "kind": kind, "params": sp}
            if status == "interrupted" and broken is not None and idx >= broken:
                row |= {"state": "pending", "attempts": 0}
                if idx == broken:  # the step that was running when the runner died
                    row |= {"state": "interrupted", "attempts": 1, "started_at": clock}
                    row |= {"ended_at": clock + dt.timedelta(seconds=rng.uniform(1, 60))}
                rows.append(row)
                continue
            if any(u in down for u in ups):
                down.add(name)
                culprit = next(u for u in ups if u in down)
                row |= {
                    "state": "skipped",
                    "attempts": 0,
                    "error": f"skipped: upstream step '{culprit}' failed",
                    "reason": {"cache": "skipped", "summary": f"upstream step '{culprit}' failed"},
                    "params": None,
                }
                rows.append(row)
                continue
            inputs = {u: outputs[u] for u in ups}
            prev = self.last.get((pipe, name))
            fails = status == "failed" and idx == broken
            cached = (
                not fails
                and prev is not None
                and prev["inputs"] == inputs
                and prev["params"] == sp
                and rng.random() < 0.75
            )
            if cached:
                assert prev is not None
                row |= self.cached_row(prev, clock, inputs)
            else:
                row |= self.ran_row(run_id, name, kind, sp, inputs, prev, clock, fails)
                clock = row["ended_at"]
            if fails:
                down.add(name)
            else:
                outputs[name] = row["outputs"][0]["hash"]
                self.last[(pipe, name)] = {
                    "inputs": inputs,
                    "params": sp,
                    "outputs": row["outputs"],
                    "cache_key": row["cache_key"],
                    "run_id": run_id if not cached else prev["run_id"],  # type: ignore[index]
                }
            if name == "deploy" and not cached and not fails and rng.random() < 0.05:
                self.register(f"{pipe}-model", run_id, params, row["outputs"][0]["hash"], clock)
            rows.append(row)
        return rows, clock + dt.timedelta(seconds=0.02)

    def cached_row(
        self, prev: dict[str, Any], clock: dt.datetime, inputs: dict[str, str]
    ) -> dict[str, Any]:
        src = prev["run_id"]
        return {
            "state": "cached",
            "attempts": 0,
            "started_at": clock,
            "ended_at": clock,
            "duration": 0.0,
            "cache_key": prev["cache_key"],
            "reason": {
                "cache": "hit",
                "summary": f"cached: same code, params and inputs as run {src}",
                "from_run": src,
            },
            "inputs": inputs,
            "outputs": prev["outputs"],
        }

    def ran_row(
        self,
        run_id: str,
        name: str,
        kind: str,
        sp: dict[str, Any],
        inputs: dict[str, str],
        prev: dict[str, Any] | None,
        clock: dt.datetime,
        fails: bool,
    ) -> dict[str, Any]:
        rng = self.rng
        duration = rng.lognormvariate(0.5 if kind == "train" else -1.5, 1.0)
        end = clock + dt.timedelta(seconds=duration)
        row: dict[str, Any] = {
            "state": "failed" if fails else "succeeded",
            "attempts": rng.choice((1, 1, 1, 2, 3)) if fails else 1,
            "started_at": clock,
            "ended_at": end,
            "duration": duration,
            "cache_key": self.hexid(32),
            "reason": self.miss_reason(sp, inputs, prev),
            "inputs": inputs,
            "outputs": [],
            "log": self.log(kind, sp, clock),
        }
        if fails:
            row["error"] = traceback_text(self.target_file, name, rng)
            return row
        serializer, type_ = OUT_TYPES[kind]
        out = {"hash": self.hexid(32), "serializer": serializer, "type": type_}
        out["size"] = rng.randint(200, 5_000_000)
        row["outputs"] = [out]
        self.artifacts.append(
            out | {"run_id": run_id, "step": name, "created_at": end}  # type: ignore[operator]
        )
        return row

    def miss_reason(
        self, sp: dict[str, Any], inputs: dict[str, str], prev: dict[str, Any] | None
    ) -> dict[str, Any]:
        if prev is None:
            return {"cache": "miss", "summary": "no cache entry for this step yet"}
        lines = [
            f"parameter '{k}' changed: {prev['params'].get(k)!r} -> {v!r}"
            for k, v in sp.items()
            if prev["params"].get(k) != v
        ]
        lines += [
            f"input '{k}' changed (new content hash)"
            for k in inputs
            if prev["inputs"].get(k) != inputs[k]
        ]
        if not lines:
            lines = ["code changed: features.helpers.clean"]
        return {
            "cache": "miss",
            "summary": "; ".join(lines),
            "details": lines,
            "compared_with_run": prev["run_id"],
            "compared_with_key": prev["cache_key"],
        }

    def log(self, kind: str, sp: dict[str, Any], clock: dt.datetime) -> str:
        rng = self.rng
        values = {
            "day": clock.date().isoformat(),
            "region": sp.get("region", "eu"),
            "rows": rng.randint(10_000, 2_000_000),
            "cols": rng.randint(20, 300),
            "nulls": rng.randint(0, 500),
            "lr": sp.get("lr", 0.1),
            "loss": rng.random(),
            "auc": 0.7 + 0.3 * rng.random(),
            "champ": rng.randint(1, 40),
            "promoted": rng.random() < 0.3,
        }
        out = []
        for k, template in enumerate(LOG_LINES[kind]):
            stamp = (clock + dt.timedelta(milliseconds=37 * k)).strftime("%H:%M:%S.%f")[:-3]
            out.append(f"{stamp} [info] {template.format(**values)}\n")
        return "".join(out)

    def register(
        self, model: str, run_id: str, params: dict[str, Any], hash_: str, at: dt.datetime
    ) -> None:
        version = self.versions.get(model, 0) + 1
        self.versions[model] = version
        auc = 0.7 + 0.3 * self.rng.random()
        self.model_rows.append(
            {
                "name": model,
                "version": version,
                "stage": "candidate",
                "artifact_hash": hash_,
                "metrics": {"auc": auc, "accuracy": auc - 0.05, "f1": auc - 0.1},
                "run_id": run_id,
                "step": "deploy",
                "params": params,
                "data_hash": self.hexid(32),
                "reason": f"kept champion: auc {auc:.4f} does not beat the champion by 0.01",
                "created_at": at,
                "updated_at": at,
            }
        )


def traceback_text(target: Path, step: str, rng: random.Random) -> str:
    cause = rng.choice(
        (
            ("KeyError", "'customer_id'"),
            ("ValueError", "Input contains NaN, infinity or a value too large"),
            ("MemoryError", "Unable to allocate 3.1 GiB for an array"),
            ("ConnectionError", "warehouse.internal:5432: connection refused"),
        )
    )
    return textwrap.dedent(
        f"""\
        {cause[0]}: {cause[1]}
        Traceback (most recent call last):
          File "/srv/app/orchestrator/worker.py", line 268, in execute
            value = step.fn(**kwargs)
                    ^^^^^^^^^^^^^^^^^
          File "{target}", line 42, in {step}
            frame = load_partition(path, columns=COLUMNS)
          File "/srv/app/features/io.py", line 88, in load_partition
            return transform(pd.read_parquet(path, columns=columns))
        {cause[0]}: {cause[1]}
        """
    )


def fill(url: str, target_file: Path, n_runs: int, analyze: bool = True, seed: int = 7) -> float:
    """Migrate and fill the store at `url`; return the seconds the inserts took."""
    engine = connect(url)
    migrate(engine)
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(t.runs)).scalar():
            raise SystemExit(f"{url}: the database already has runs; give an empty one")
    filler = Filler(random.Random(seed), target_file, dt.datetime.now(dt.UTC))
    t0 = time.perf_counter()
    with engine.connect().execution_options(orch_write=True) as conn, conn.begin():
        stamp = filler.now
        conn.execute(
            insert(t.pipelines),
            [{"name": p, "ref": f"{target_file}:{p}", "updated_at": stamp} for p in PIPELINES],
        )
        seen: set[str] = set()
        for lo in range(0, n_runs, CHUNK):
            runs, steps = [], []
            for i in range(lo, min(lo + CHUNK, n_runs)):
                run, rows = filler.run(i, n_runs)
                runs.append(run)
                steps.extend(_full(r) for r in rows)
            arts = [a for a in filler.artifacts if a["hash"] not in seen]
            seen.update(a["hash"] for a in arts)
            filler.artifacts.clear()
            conn.execute(insert(t.runs), runs)
            conn.execute(insert(t.step_runs), steps)
            if arts:
                conn.execute(insert(t.artifacts), arts)
        for name in filler.versions:  # the best version of each model is in production
            mine = [m for m in filler.model_rows if m["name"] == name]
            best = max(mine, key=lambda m: m["metrics"]["auc"])
            for m in mine:
                m["stage"] = "archived" if m["version"] < best["version"] else "candidate"
            best["stage"] = "production"
        if filler.model_rows:
            conn.execute(insert(t.model_versions), filler.model_rows)
    seconds = time.perf_counter() - t0
    if analyze and engine.dialect.name == "postgresql":
        # autovacuum would do this within a minute of a bulk load; without statistics the
        # planner scans all of step_runs for the runs list's per-run state counts
        t1 = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
        print(f"ANALYZE: {time.perf_counter() - t1:.1f} s (not in the fill time)")
    engine.dispose()
    return seconds


def describe(url: str) -> dict[str, Any]:
    """Row counts, a failed run from the newer part of the history, the model names."""
    engine = connect(url)
    with engine.connect() as conn:
        counts = {
            tbl.name: conn.execute(select(func.count()).select_from(tbl)).scalar() or 0
            for tbl in (t.runs, t.step_runs, t.artifacts, t.model_versions)
        }
        run_id = conn.execute(
            select(t.runs.c.id)
            .where(t.runs.c.status == "failed")
            .order_by(t.runs.c.started_at.desc())
            .offset(counts["runs"] // 100)
            .limit(1)
        ).scalar()
        names = conn.execute(select(t.model_versions.c.name).distinct()).scalars().all()
    engine.dispose()
    if run_id is None:
        raise SystemExit(f"{url}: no failed run to open; fill the store first")
    return {"counts": counts, "run_id": run_id, "models": sorted(names)}


_STEP_COLS = [c.name for c in t.step_runs.columns if c.name != "id"]


def _full(row: dict[str, Any]) -> dict[str, Any]:
    return {c: row.get(c) for c in _STEP_COLS}


# -- the server and the timing ------------------------------------------------------------
def start_ui(env: dict[str, str], cwd: Path) -> tuple[Any, str]:
    """Start `orch ui --port 0`; return the process and its base URL (from its first line)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "ui", "--port", "0"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    prefix = "orch ui: serving on "
    if not line.startswith(prefix):
        proc.kill()
        proc.wait()
        raise SystemExit(f"orch ui did not start (first line {line!r}); run it by hand to see why")
    return proc, line[len(prefix) :].strip()


def start_py_spy(pid: int, out: Path) -> Any:
    """`py-spy record` on the server (all threads; .svg flame graph, .json speedscope,
    anything else collapsed stacks); stopped with SIGINT, when it writes `out`."""
    exe = shutil.which("py-spy")
    if exe is None:
        raise SystemExit("--py-spy needs py-spy: pip install py-spy")
    fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(out.suffix, "raw")
    cmd = [exe, "record", "--pid", str(pid), "--rate", "250", "--format", fmt]
    proc = subprocess.Popen([*cmd, "--output", str(out)], stdout=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach before the timed requests
    return proc


@dataclass
class Sample:
    ttfb: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    size: int = 0
    status: int = 0
    first: float = 0.0  # TTFB of the very first request (cold caches)


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects if the server closed it."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, float, float, int]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.connect()
            try:
                t0 = time.perf_counter()
                self.conn.request("GET", path, headers={"Accept": "text/html,application/json"})
                resp = self.conn.getresponse()
                t1 = time.perf_counter()
                body = resp.read()
                t2 = time.perf_counter()
                if resp.will_close:
                    self.conn.close()
                    self.conn = None
                return resp.status, t1 - t0, t2 - t0, len(body)
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def measure(base: str, paths: list[str], warmup: int, repeat: int) -> dict[str, Sample]:
    client = Client(base)
    samples = {p: Sample() for p in paths}
    for i in range(max(warmup, 1)):
        for p in paths:
            ttfb = client.get(p)[1]
            if i == 0:
                samples[p].first = ttfb * 1000
    for _ in range(repeat):
        for p in paths:
            status, ttfb, total, size = client.get(p)
            s = samples[p]
            s.status, s.size = status, size
            s.ttfb.append(ttfb * 1000)
            s.total.append(total * 1000)
    return samples


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def report(samples: dict[str, Sample]) -> None:
    """One line per URL; `ok` when the median and the p95 TTFB are within the target."""
    width = max(len(p) for p in samples)
    print(
        f"{'url':<{width}}  status  {'bytes':>8}  first  ttfb median    p95  "
        f"total median    p95  target {TARGET_MS:.0f} ms"
    )
    for path, s in samples.items():
        med, high = statistics.median(s.ttfb), p95(s.ttfb)
        ok = "ok" if max(med, high) <= TARGET_MS and s.status == 200 else "MISSED"
        print(
            f"{path:<{width}}  {s.status:>6}  {s.size:>8}  {s.first:>5.0f}"
            f"  {med:>8.1f} ms {high:>6.1f}  {statistics.median(s.total):>9.1f} ms"
            f" {p95(s.total):>6.1f}  {ok}"
        )


@dataclass
class Store:
    home: Path
    url: str
    env: dict[str, str]


def make_store(tmp: Path, db_url: str | None, fresh: bool = True) -> Store:
    home = tmp / "state"
    home.mkdir(parents=True, exist_ok=not fresh)
    url = db_url or f"sqlite:///{home / 'orchestrator.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("ORCH_DB_URL", "ORCH_UI_TOKEN")}
    env |= {"ORCH_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    if db_url:
        env["ORCH_DB_URL"] = db_url
    return Store(home, url, env)


def stop(proc: Any) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def urls(info: dict[str, Any]) -> list[str]:
    run_id = info["run_id"]
    out = [
        "/runs",
        "/runs?page=50",
        "/runs?status=failed",
        "/runs?pipeline=fraud",
        f"/runs/{run_id}",
        f"/api/runs/{run_id}",
    ]
    if info["models"]:
        out.append(f"/models/{info['models'][0]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--db-url", help="an empty database (default: SQLite in a temp dir)")
    parser.add_argument("--keep", type=Path, help="fill into this (empty) folder and keep it")
    parser.add_argument("--reuse", type=Path, help="time a folder filled earlier with --keep")
    parser.add_argument("--fill-only", action="store_true")
    parser.add_argument(
        "--no-analyze", action="store_true", help="PostgreSQL: time it before ANALYZE"
    )
    parser.add_argument("--py-spy", type=Path, help="profile the server with py-spy into FILE")
    parser.add_argument("--only", help="time only the URLs containing this string")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, {platform.platform()}")
    if args.reuse:
        store = make_store(args.reuse, args.db_url, fresh=False)
        time_ui(store, args.reuse, describe(store.url), args)
        return
    for tmp in _workdir(args.keep, args.fill_only):
        store = make_store(tmp, args.db_url)
        target = tmp / "flows.py"
        target.write_text(pipeline_source())
        seconds = fill(store.url, target, args.runs, analyze=not args.no_analyze)
        info = describe(store.url)
        c = info["counts"]
        print(
            f"fill: {c['runs']} runs, {c['step_runs']} step runs, {c['artifacts']} artifacts, "
            f"{c['model_versions']} model versions in {seconds:.1f} s "
            f"({store.url.split(':')[0]})"
        )
        db = store.home / "orchestrator.db"
        if db.exists():
            print(f"SQLite file: {db.stat().st_size / 1e6:.0f} MB")
        if args.fill_only:
            print(f"kept in {tmp} (time it with --reuse {tmp})")
            return
        time_ui(store, tmp, info, args)


def time_ui(store: Store, cwd: Path, info: dict[str, Any], args: argparse.Namespace) -> None:
    proc, base = start_ui(store.env, cwd)
    spy = start_py_spy(proc.pid, args.py_spy) if args.py_spy else None
    try:
        paths = [u for u in urls(info) if not args.only or args.only in u]
        samples = measure(base, paths, args.warmup, args.repeat)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        stop(proc)
    print(f"orch ui at {base}; {args.warmup} warm-up + {args.repeat} requests per URL (ms)")
    report(samples)
    if args.py_spy:
        print(f"py-spy profile of the server: {args.py_spy}")


def _workdir(keep: Path | None, fill_only: bool) -> Iterator[Path]:
    """The folder for the state and the pipeline file: `keep`, or a temporary one (kept
    after `--fill-only`, whose point is the store)."""
    if keep is None and fill_only:
        keep = Path(tempfile.mkdtemp(prefix="orch-bench-ui-"))
    if keep is not None:
        if keep.exists() and any(keep.iterdir()):
            raise SystemExit(f"--keep {keep}: the folder is not empty")
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-ui-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
