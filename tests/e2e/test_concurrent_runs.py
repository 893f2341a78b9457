"""Two `orch run` processes on the same ORCH_HOME at once: both succeed, the DB stays sound."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from orchtest import Orch, Project, states, step_of

SLOW_PIPELINE = """
import time

from orchestrator import pipeline, step


@step(kind="ingest")
def load(n: int) -> list[int]:
    time.sleep(0.4)
    return list(range(n))


@step(kind="feature")
def square(xs: list[int]) -> list[int]:
    time.sleep(0.4)
    return [x * x for x in xs]


@step(kind="feature")
def negate(xs: list[int]) -> list[int]:
    time.sleep(0.4)
    return [-x for x in xs]


@step(kind="evaluate")
def total(a: list[int], b: list[int]) -> int:
    time.sleep(0.2)
    return sum(a) + sum(b)


@pipeline
def slow(n: int = 50):
    xs = load(n=n)
    total(square(xs), negate(xs))
"""


def test_two_concurrent_runs_both_succeed(orch: Orch, project: Project, tmp_path: Path) -> None:
    project.write("slow.py", SLOW_PIPELINE)
    # a fresh ORCH_HOME: both processes also create the database at the same time
    procs = [
        orch.popen("run", "slow.py:slow", "--json", log=tmp_path / f"run{i}") for i in range(2)
    ]
    codes = [p.wait(timeout=180) for p in procs]
    outs = [(tmp_path / f"run{i}.out").read_text() for i in range(2)]
    errs = [(tmp_path / f"run{i}.err").read_text() for i in range(2)]
    assert codes == [0, 0], errs

    docs = [json.loads(o) for o in outs]
    for doc, err in zip(docs, errs, strict=True):
        assert doc["status"] == "succeeded", err
        assert set(states(doc).values()) <= {"succeeded", "cached"}
        assert "Traceback" not in err and "locked" not in err
    assert docs[0]["run_id"] != docs[1]["run_id"]
    # the same computation: the same bytes, whoever computed them
    assert step_of(docs[0], "total")["outputs"] == step_of(docs[1], "total")["outputs"]

    listed = {r["run_id"]: r for r in orch.runs()}
    for d in docs:
        assert listed[d["run_id"]]["status"] == "succeeded"
        assert sum(listed[d["run_id"]]["counts"].values()) == 4  # each run has its own steps

    con = sqlite3.connect(orch.db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        con.close()

    # and a third run finds everything in the cache
    assert set(states(orch.run("slow.py:slow")).values()) == {"cached"}
