"""The file sensor: new or changed files (by content) start one run with those files."""

from __future__ import annotations

import os
import time

from orchtest import Orch, Project

FLOW = """
from orchestrator import pipeline, step
from orchestrator.triggers.events import FileSensor

@step
def count_lines(files: list[str]) -> int:
    return sum(len(open(f).read().splitlines()) for f in files)

@pipeline
def ingest(files: list[str] = []):
    count_lines(files=files)

landing = FileSensor(name="landing", glob="inbox/*.csv", pipeline="ingest", debounce={debounce})
"""


def _daemon(orch: Orch) -> None:
    res = orch("daemon", "flow.py", "--once")
    assert res.code == 0, res.describe()
    assert "Traceback" not in res.err


def _sensor_runs(orch: Orch) -> list[list[str]]:
    runs = [r for r in orch.runs() if (r["trigger"] or {}).get("kind") == "sensor"]
    assert all(r["status"] == "succeeded" for r in runs), runs
    return [sorted(os.path.basename(f) for f in r["trigger"]["files"]) for r in reversed(runs)]


def test_new_files_start_one_run_and_same_bytes_start_none(orch: Orch, project: Project) -> None:
    project.write("flow.py", FLOW.format(debounce=0))
    project.write("inbox/a.csv", "x\n1\n2\n")
    project.write("inbox/b.csv", "x\n3\n")
    project.write("inbox/notes.txt", "ignored\n")
    _daemon(orch)
    assert _sensor_runs(orch) == [["a.csv", "b.csv"]]
    run = orch.runs()[0]
    assert [os.path.basename(f) for f in run["params"]["files"]] == ["a.csv", "b.csv"]
    # the same bytes again (rewritten, new mtime): nothing new
    project.write("inbox/a.csv", "x\n1\n2\n")
    _daemon(orch)
    assert len(_sensor_runs(orch)) == 1
    # changed content: one more run, with only that file
    project.write("inbox/b.csv", "x\n3\n4\n")
    _daemon(orch)
    assert _sensor_runs(orch) == [["a.csv", "b.csv"], ["b.csv"]]


def test_files_still_being_written_wait_for_the_debounce(orch: Orch, project: Project) -> None:
    project.write("flow.py", FLOW.format(debounce=3600))
    project.write("inbox/a.csv", "x\n1\n")
    _daemon(orch)
    assert _sensor_runs(orch) == []
    old = time.time() - 7200
    os.utime(project.path("inbox/a.csv"), (old, old))
    _daemon(orch)
    assert _sensor_runs(orch) == [["a.csv"]]
