"""Failing steps: validation reports, failing branches, retries and timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from orchtest import Orch, Project, states, step_of

VALIDATE_PIPELINE = """
import pandas as pd

from orchestrator import pipeline, step
from orchestrator.steps import validate_frame


@step(kind="ingest")
def make() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, 2.0, 7.5, 9.0], "y": [1, 2, 3, 4]})


@step(kind="feature")
def feat(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(z=df["x"] + df["y"])


@step(kind="evaluate")
def score(df: pd.DataFrame) -> float:
    return float(df["z"].sum())


@pipeline
def checked(hi: float = 5.0):
    df, _report = validate_frame(make(), ranges={"x": (0, hi)}, not_null=["y"], min_rows=2)
    score(feat(df))
"""


def test_failing_validation_stops_the_run(orch: Orch, project: Project) -> None:
    project.write("checked.py", VALIDATE_PIPELINE)
    run = orch.run("checked.py:checked", code=1)
    assert run["status"] == "failed"
    assert states(run) == {
        "make": "succeeded",
        "validate": "failed",
        "feat": "skipped",
        "score": "skipped",
    }
    validate = step_of(run, "validate")
    assert validate["kind"] == "validate"
    error = validate["error"]
    assert "validation failed: 1 of" in error
    assert "FAIL" in error and "range" in error and "2 values outside [0, 5]" in error
    assert "PASS" in error  # the report lists the checks that passed too
    for name in ("feat", "score"):
        assert "upstream step 'validate' failed" in step_of(run, name)["reason"]

    shown = orch("show", run["run_id"])
    assert shown.code == 0, shown.describe()
    assert "FAIL" in shown.out and "2 values outside [0, 5]" in shown.out
    assert "not_null" in shown.out

    # the data did not change, the rule did: the same ingest output now passes
    ok = orch.run("checked.py:checked", "--param", "hi=10")
    assert states(ok) == {
        "make": "cached",
        "validate": "succeeded",
        "feat": "succeeded",
        "score": "succeeded",
    }


BRANCHES_PIPELINE = """
from orchestrator import pipeline, step


@step(kind="ingest")
def load() -> list[int]:
    return [1, 2, 3]


@step
def bad(xs: list[int]) -> list[int]:
    raise ValueError("boom in bad")


@step
def after_bad(xs: list[int]) -> int:
    return len(xs)


@step
def good(xs: list[int]) -> list[int]:
    return [x + 1 for x in xs]


@step
def after_good(xs: list[int]) -> int:
    return sum(xs)


@step
def join(a: int, b: int) -> int:
    return a + b


@pipeline
def branches():
    xs = load()
    b = after_bad(bad(xs))
    g = after_good(good(xs))
    join(b, g)
"""


def test_failing_branch_skips_its_descendants_only(orch: Orch, project: Project) -> None:
    project.write("branches.py", BRANCHES_PIPELINE)
    res = orch("run", "branches.py:branches")  # as a user types it, without --json
    assert res.code == 1, res.describe()
    assert "step 'bad' failed" in res.err
    assert "ValueError: boom in bad" in res.err
    assert "orch resume" in res.err
    assert "Traceback" not in res.err.split("step 'bad' failed")[0]

    [row] = orch.runs()
    assert row["status"] == "failed"
    shown = orch.show(row["run_id"])
    assert states(shown) == {
        "load": "succeeded",
        "bad": "failed",
        "after_bad": "skipped",
        "good": "succeeded",
        "after_good": "succeeded",
        "join": "skipped",
    }
    bad = step_of(shown, "bad")
    assert bad["error"].startswith("ValueError: boom in bad")
    assert 'raise ValueError("boom in bad")' in bad["error"]  # the user's traceback is kept
    assert bad["attempts"] == 1
    assert step_of(shown, "after_good")["outputs"]

    # the healthy branch is reused on the next attempt
    again = orch.run("branches.py:branches", code=1)
    assert states(again)["good"] == "cached" and states(again)["after_good"] == "cached"
    assert states(again)["bad"] == "failed"


RETRY_PIPELINE = """
import time
from pathlib import Path

import pytest

from orchestrator import pipeline, step

COUNTER = Path({counter!r})


def _attempt() -> int:
    n = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(n))
    return n


@step(retries=2, retry_backoff=0.05)
def flaky() -> int:
    n = _attempt()
    if n < 3:
        raise RuntimeError(f"transient failure {{n}}")
    return n


@step(retries=1, retry_backoff=0.05)
def hopeless() -> int:
    n = _attempt()
    raise ValueError(f"still broken on attempt {{n}}")


@step
def after(x: int) -> int:
    return x * 2


@step(timeout=0.5)
def sleepy() -> int:
    time.sleep(5)
    return 1


@step
def fine() -> int:
    return 7


@pipeline
def retrying():
    after(flaky())


@pipeline
def exhausted():
    after(hopeless())


@pipeline
def timing_out():
    after(sleepy())
    fine()
"""


def test_retries_until_success(orch: Orch, project: Project, tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    project.write("retry.py", RETRY_PIPELINE.format(counter=str(counter)))
    run = orch.run("retry.py:retrying")
    assert run["status"] == "succeeded"
    flaky = step_of(run, "flaky")
    assert flaky["state"] == "succeeded"
    assert flaky["attempts"] == 3
    assert flaky["error"] is None
    assert counter.read_text() == "3"
    assert step_of(run, "after")["state"] == "succeeded"
    assert step_of(orch.show(run["run_id"]), "flaky")["attempts"] == 3


def test_retries_exhausted(orch: Orch, project: Project, tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    project.write("retry.py", RETRY_PIPELINE.format(counter=str(counter)))
    run = orch.run("retry.py:exhausted", code=1)
    assert run["status"] == "failed"
    hopeless = step_of(run, "hopeless")
    assert hopeless["state"] == "failed"
    assert hopeless["attempts"] == 2
    assert "ValueError: still broken on attempt 2" in hopeless["error"]
    assert counter.read_text() == "2"
    assert step_of(run, "after")["state"] == "skipped"


def test_timeout_kills_the_step_in_the_process_executor(
    orch: Orch, project: Project, tmp_path: Path
) -> None:
    project.write("retry.py", RETRY_PIPELINE.format(counter=str(tmp_path / "attempts")))
    run = orch.run("retry.py:timing_out", "--executor", "process", code=1)
    assert run["status"] == "failed"
    assert states(run) == {"sleepy": "failed", "after": "skipped", "fine": "succeeded"}
    error = step_of(run, "sleepy")["error"]
    assert "timed out" in error and "0.5" in error
    assert "could not be stopped" not in error  # a process can be killed
    shown = orch.show(run["run_id"])
    assert step_of(shown, "sleepy")["state"] == "failed"
    assert step_of(shown, "after")["state"] == "skipped"
    assert [r["status"] for r in orch.runs()] == ["failed"]


BAD_RETURNS_PIPELINE = """
import threading

from orchestrator import pipeline, step


@step
def two() -> tuple[int, int]:
    return 1, 2, 3


@step
def lock() -> int:
    return threading.Lock()


@step
def fine() -> int:
    return 1


@pipeline
def bad_returns():
    two()
    lock()
    fine()
"""


def test_wrong_outputs_fail_the_step_with_a_clear_message(orch: Orch, project: Project) -> None:
    project.write("returns.py", BAD_RETURNS_PIPELINE)
    run = orch.run("returns.py:bad_returns", code=1)
    assert states(run) == {"two": "failed", "lock": "failed", "fine": "succeeded"}
    assert "declares 2 outputs but returned 3 values" in step_of(run, "two")["error"]
    assert "no serializer" in step_of(run, "lock")["error"]


BAD_EXCEPTION_PIPELINE = """
from orchestrator import pipeline, step


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ of Unprintable fails")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ of Unprintable fails")


@step
def bad() -> int:
    raise Unprintable("no text")


@step
def after(x: int) -> int:
    return x


@step
def fine() -> int:
    return 5


@pipeline
def unprintable():
    after(bad())
    fine()
"""


@pytest.mark.parametrize("executor", ["thread", "process", "sequential"])
def test_an_exception_that_cannot_be_printed_fails_its_step_only(
    orch: Orch, project: Project, executor: str
) -> None:
    project.write("bad_exc.py", BAD_EXCEPTION_PIPELINE)
    run = orch.run("bad_exc.py:unprintable", "--executor", executor, code=1)
    assert run["status"] == "failed"
    assert states(run) == {"bad": "failed", "after": "skipped", "fine": "succeeded"}
    error = step_of(run, "bad")["error"]
    assert "Unprintable" in error
    assert "its message could not be printed" in error
    assert [r["status"] for r in orch.runs()] == ["failed"]


ENDLESS_PIPELINE = """
import time

from orchestrator import pipeline, step


@step(timeout=1)
def endless() -> int:
    while True:
        pass


@step(timeout=1)
def sleeper() -> int:
    time.sleep(60)
    return 1


@step
def fine() -> int:
    return 3


@pipeline
def spinning():
    endless()
    fine()


@pipeline
def sleeping():
    sleeper()
"""


@pytest.mark.parametrize("target", ["spinning", "sleeping"])
def test_a_timed_out_thread_step_does_not_hold_the_command(
    orch: Orch, project: Project, target: str
) -> None:
    project.write("endless.py", ENDLESS_PIPELINE)
    res = orch("run", f"endless.py:{target}", "--json", timeout=30)  # never ending otherwise
    assert res.code == 1, res.describe()
    name = "endless" if target == "spinning" else "sleeper"
    error = step_of(res.json, name)["error"]
    assert f"step '{name}' timed out after 1s" in error
    assert [r["status"] for r in orch.runs()] == ["failed"]
    assert step_of(orch.show(res.json["run_id"]), name)["state"] == "failed"
