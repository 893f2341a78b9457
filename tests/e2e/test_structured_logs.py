"""Structured logs: JSON lines on request, each bound to its run (and step where it has one)."""

from __future__ import annotations

import json

from orchtest import Orch, Project

FLOW = """
from orchestrator import pipeline, step

@step
def ok() -> int:
    return 1

@step
def bad(x: int) -> int:
    raise ValueError("no good")

@pipeline
def flow():
    bad(ok())
"""


def test_json_logs_name_run_and_step(orch: Orch, project: Project) -> None:
    project.write("flow.py", FLOW)
    orch.env["ORCH_LOG_FORMAT"] = "json"
    res = orch("run", "flow.py:flow", "--json")
    assert res.code == 1, res.describe()
    lines = [json.loads(line) for line in res.err.splitlines() if line.startswith("{")]
    events = {line["event"]: line for line in lines}
    run_id = res.json["run_id"]
    assert {"run started", "step failed", "run finished"} <= set(events)
    assert all(line["run_id"] == run_id for line in lines)
    assert events["step failed"]["step"] == "bad"
    assert events["step failed"]["error"] == "ValueError: no good"
    assert events["run finished"]["status"] == "failed"
