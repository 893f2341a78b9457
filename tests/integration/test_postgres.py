"""The orchestrator on a real PostgreSQL server, driven through the `orch` command line.

Every test gets a fresh database (`pg_url`, tests/conftest.py) and its own ORCH_HOME
for artifacts (`pg_orch`, tests/integration/conftest.py): the built-in pipelines end to
end, two runs started at once, a schedule tick raced for by two processes, and what a
user sees when the database cannot be reached or a value does not fit PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from orchtest import Orch, Project, states, step_of, wait_for  # noqa: E402

from orchestrator.store.db import HEAD  # noqa: E402
from orchestrator.store.metadata import MetadataStore  # noqa: E402

STEPS = ["ingest", "validate", "features", "train", "evaluate", "deploy"]
MODELS = {"classification": "iris-classifier", "regression": "diabetes-regressor"}

SMALL_PIPELINE = """
import time

from orchestrator import pipeline, step


@step(kind="ingest")
def load(n: int) -> list[int]:
    time.sleep(0.3)
    return list(range(n))


@step(kind="feature")
def square(xs: list[int]) -> list[int]:
    time.sleep(0.3)
    return [x * x for x in xs]


@step(kind="feature")
def shift(xs: list[int], by: float = 1.0) -> list[float]:
    time.sleep(0.3)
    return [x + by for x in xs]


@step(kind="evaluate")
def total(a: list[int], b: list[float]) -> float:
    return sum(a) + sum(b)


@pipeline
def small(n: int = 20, by: float = 1.0):
    xs = load(n=n)
    total(square(xs), shift(xs, by=by))
"""
SMALL_STEPS = ("load", "square", "shift", "total")


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


# -- the built-in pipelines ---------------------------------------------------------------


@pytest.mark.parametrize("pipeline", ["classification", "regression"])
def test_builtin_pipeline_end_to_end(pg_orch: Orch, pg_url: str, pipeline: str) -> None:
    first = pg_orch.run(pipeline)
    assert first["status"] == "succeeded"
    assert states(first) == dict.fromkeys(STEPS, "succeeded")
    second = pg_orch.run(pipeline)
    assert second["status"] == "succeeded"
    assert states(second) == dict.fromkeys(STEPS, "cached")
    for name in STEPS:  # the cache hands back the first run's artifacts
        assert step_of(second, name)["outputs"] == step_of(first, name)["outputs"]

    models = pg_orch("models", MODELS[pipeline], "--json")
    assert models.code == 0, models.describe()
    [production] = [m for m in models.json["models"] if m["stage"] == "production"]
    assert production["name"] == MODELS[pipeline] and production["version"] == 1
    assert production["run_id"] == first["run_id"]
    assert production["artifact_hash"] == step_of(first, "train")["outputs"][0]["hash"]

    runs = pg_orch.runs()
    assert [r["run_id"] for r in runs] == [second["run_id"], first["run_id"]]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert [r["counts"] for r in runs] == [{"cached": 6}, {"succeeded": 6}]
    assert {r["pipeline"] for r in runs} == {pipeline}

    shown = pg_orch.show(second["run_id"][:6])  # a prefix is enough
    assert shown["run_id"] == second["run_id"] and shown["status"] == "succeeded"
    assert states(shown) == dict.fromkeys(STEPS, "cached")
    assert step_of(shown, "train")["outputs"] == step_of(first, "train")["outputs"]

    why = pg_orch("explain", second["run_id"][:8], "train", "--json")
    assert why.code == 0, why.describe()
    assert why.json["state"] == "cached"
    assert why.json["reason"]["cache"] == "hit"
    assert why.json["reason"]["from_run"] == first["run_id"]
    assert f"of run {first['run_id']} ran" in pg_orch.explain(first["run_id"], "train")

    # it all lives in PostgreSQL: no SQLite file appeared in ORCH_HOME
    assert not pg_orch.db.exists()
    assert query(pg_url, "SELECT count(*) FROM runs") == [(2,)]
    assert query(pg_url, "SELECT count(*) FROM step_runs") == [(12,)]
    assert query(pg_url, "SELECT version_num FROM alembic_version") == [(HEAD,)]


# -- concurrency --------------------------------------------------------------------------


def test_two_runs_started_at_once_both_succeed(
    pg_orch: Orch, pg_project: Project, pg_url: str, tmp_path: Path
) -> None:
    pg_project.write("small.py", SMALL_PIPELINE)
    # a fresh database: both processes also migrate it at the same time
    procs = [
        pg_orch.popen("run", "small.py:small", "--json", log=tmp_path / f"run{i}") for i in range(2)
    ]
    codes = [p.wait(timeout=180) for p in procs]
    errs = [(tmp_path / f"run{i}.err").read_text() for i in range(2)]
    assert codes == [0, 0], errs
    docs = [json.loads((tmp_path / f"run{i}.out").read_text()) for i in range(2)]
    for doc, err in zip(docs, errs, strict=True):
        assert doc["status"] == "succeeded", err
        assert set(states(doc)) == set(SMALL_STEPS)
        assert set(states(doc).values()) <= {"succeeded", "cached"}
        assert "Traceback" not in err
    assert docs[0]["run_id"] != docs[1]["run_id"]
    assert step_of(docs[0], "total")["outputs"] == step_of(docs[1], "total")["outputs"]

    listed = {r["run_id"]: r for r in pg_orch.runs()}
    assert set(listed) == {d["run_id"] for d in docs}
    for r in listed.values():
        assert r["status"] == "succeeded" and sum(r["counts"].values()) == 4
    # one cache entry per step, whichever process wrote it first
    assert query(pg_url, "SELECT count(*) FROM cache_entries") == [(4,)]
    assert query(pg_url, "SELECT count(*) FROM step_runs") == [(8,)]
    assert query(pg_url, "SELECT count(*) FROM alembic_version") == [(1,)]

    third = pg_orch.run("small.py:small")
    assert states(third) == dict.fromkeys(SMALL_STEPS, "cached")


CLAIMER = """
import json
import sys
import time
from pathlib import Path

from orchestrator.store.metadata import MetadataStore

url, owner, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
store = MetadataStore(url)
(folder / f"{owner}.ready").touch()
while not (folder / "go").exists():
    time.sleep(0.001)
won = [i for i in range(200) if store.claim("tick", f"daily@{i}", owner)]
store.close()
print(json.dumps(won))
"""


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_the_same_tick_claimed_by_two_processes_runs_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (
        str(request.getfixturevalue("pg_url"))
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'claims.db'}"
    )
    script = tmp_path / "claimer.py"
    script.write_text(CLAIMER)
    owners = ("proc-a", "proc-b")
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, owner, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for owner in owners
    ]
    try:
        wait_for(
            lambda: (
                all((tmp_path / f"{o}.ready").exists() for o in owners)
                or any(p.poll() is not None for p in procs)
            ),
            "both claimers to open the store",
            timeout=120,
        )
        (tmp_path / "go").touch()  # the shared start line
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    won = {o: set(json.loads(out)) for o, (out, _) in zip(owners, results, strict=True)}
    assert won["proc-a"] | won["proc-b"] == set(range(200))
    assert won["proc-a"] & won["proc-b"] == set()

    store = MetadataStore(url)
    try:
        for owner, keys in won.items():
            assert all(store.claim_owner("tick", f"daily@{i}") == owner for i in keys)
    finally:
        store.close()


# -- what a user sees when something does not fit -------------------------------------------


def test_unreachable_database_is_one_error_line(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    project.write("small.py", SMALL_PIPELINE)
    orch = Orch(tmp_path / "orch-home", project.root)
    orch.env["ORCH_DB_URL"] = "postgresql+psycopg://orch:orch@127.0.0.1:1/x"
    for args in (["runs"], ["run", "small.py:small", "--json"], ["models"]):
        res = orch(*args)
        assert res.code == 2, res.describe()
        assert res.out == "", res.describe()
        lines = [line for line in res.err.splitlines() if line.strip()]
        assert len(lines) == 1, res.describe()
        assert lines[0].startswith("error: ") and "metadata store" in lines[0], res.describe()
        assert "127.0.0.1:1/x" in lines[0], res.describe()  # names the store ...
        assert "orch:orch@" not in res.err, res.describe()  # ... without its password
        assert "Traceback" not in res.err, res.describe()
    assert not orch.db.exists()  # no fallback to a local SQLite file


def test_a_nan_parameter_gives_no_traceback(pg_orch: Orch, pg_project: Project) -> None:
    """SQLite stores NaN in a JSON column; PostgreSQL's JSON type rejects it."""
    pg_project.write("small.py", SMALL_PIPELINE)
    res = pg_orch("run", "small.py:small", "-p", "by=nan", "--json")
    assert "Traceback" not in res.err, res.describe()
    assert res.code in (0, 2), res.describe()
    if res.code == 2:  # refused: one clear line
        lines = [line for line in res.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), res.describe()
    else:
        assert res.json["status"] == "succeeded", res.describe()


NUL_PIPELINE = """
from orchestrator import pipeline, step


@step(kind="ingest")
def load(n: int) -> list[int]:
    print("raw bytes:", "\\x00\\x01")
    return list(range(n))


@step(kind="evaluate")
def total(xs: list[int]) -> int:
    return sum(xs)


@pipeline
def nul(n: int = 3):
    total(load(n=n))
"""


def test_a_step_printing_a_nul_byte_succeeds(pg_orch: Orch, pg_project: Project) -> None:
    """Its captured log goes into a text column; PostgreSQL text cannot hold NUL."""
    pg_project.write("nul.py", NUL_PIPELINE)
    doc = pg_orch.run("nul.py:nul")
    assert states(doc) == {"load": "succeeded", "total": "succeeded"}
    shown = pg_orch.show(doc["run_id"])
    assert "raw bytes:" in step_of(shown, "load")["log"]
    assert pg_orch.run("nul.py:nul")["status"] == "succeeded"


RETRIED_THEN_ENDLESS = """
import time
from pathlib import Path

from orchestrator import pipeline, step


@step(retries=1, retry_backoff=0.05)
def flaky(marker: str = "m") -> int:
    path = Path(marker)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    print(f"attempt {n + 1} prints\\x00a NUL")
    if n == 0:
        raise ValueError("first attempt fails")
    return n


@step
def endless(x: int, started: str = "") -> int:
    Path(started).touch()
    while True:
        time.sleep(0.05)


@pipeline
def flow(marker: str = "m", started: str = ""):
    endless(flaky(marker=marker), started=started)
"""


def test_attempts_and_a_cancel_on_postgresql(
    pg_orch: Orch, pg_project: Project, tmp_path: Path
) -> None:
    """Both attempts of a retried step are kept, then `orch cancel` from another process
    stops the run: the held connection's rows and the cancel request meet in PostgreSQL."""
    pg_project.write("retry.py", RETRIED_THEN_ENDLESS)
    started = tmp_path / "started"
    proc = pg_orch.popen(
        "run", "retry.py:flow", "-e", "process",
        "-p", f"marker={tmp_path / 'marker'}", "-p", f"started={started}",
        log=tmp_path / "runner",
    )  # fmt: skip
    try:
        wait_for(started.exists, "the endless step to start", timeout=120)
        run_id = pg_orch.runs()[0]["run_id"]
        res = pg_orch("cancel", run_id, "--wait", "60")
        assert res.code == 0, res.describe()
        assert proc.wait(timeout=60) == 1
    finally:
        proc.kill()
    shown = pg_orch.show(run_id)
    assert shown["status"] == "cancelled"
    assert states(shown) == {"flaky": "succeeded", "endless": "interrupted"}
    tries = step_of(shown, "flaky")["attempt_history"]
    assert [(a["attempt"], a["state"]) for a in tries] == [(1, "failed"), (2, "succeeded")]
    assert "first attempt fails" in tries[0]["error"] and "attempt 1 prints" in tries[0]["log"]
    assert [a["state"] for a in step_of(shown, "endless")["attempt_history"]] == ["interrupted"]
