"""Drift and metric monitors through `orch daemon --once`, with batch and feedback files.

The champion comes from `examples/retraining/loop.py:retrain` (breast-cancer data).
Batches are drawn by the example's `simulate.sample` with fixed seeds.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from orchtest import Orch, Project

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retraining"

MONITORS = """
from loop import MODEL, retrain  # noqa: F401
from orchestrator import DriftMonitor, EventTrigger, MetricMonitor

drift = DriftMonitor(name="batch-drift", model=MODEL, batches="batches/*.csv")
accuracy = MetricMonitor(
    name="accuracy", model=MODEL, feedback="feedback/*.csv", metric="accuracy", threshold=0.9
)
on_drop = EventTrigger(name="on-drop", event="metric_drop", pipeline="retrain")
"""


@pytest.fixture(scope="module")
def simulate() -> Any:
    sys.path.insert(0, str(EXAMPLE))
    try:
        import simulate as mod
    finally:
        sys.path.remove(str(EXAMPLE))
    return mod


@pytest.fixture
def watched(project: Project, orch: Orch) -> Project:
    for name in ("loop.py", "simulate.py"):
        shutil.copy(EXAMPLE / name, project.path(name))
    for folder in ("labelled", "feedback", "batches"):
        project.path(folder).mkdir()
    project.write("watch.py", MONITORS)
    assert orch.run("loop.py:retrain")["status"] == "succeeded"
    return project


def _once(orch: Orch) -> str:
    res = orch("daemon", "watch.py", "--once")
    assert res.code == 0, res.describe()
    assert "Traceback" not in res.err, res.describe()
    return res.err


def _checks(orch: Orch) -> list[dict[str, Any]]:
    res = orch("monitors", "--json")
    assert res.code == 0, res.describe()
    return res.json["checks"]


def _write(frame: Any, path: Path) -> None:
    frame.to_csv(path, index=False)
    old = time.time() - 10  # older than the debounce window: fully written
    os.utime(path, (old, old))


def test_drift_flags_shifted_batches_only(orch: Orch, watched: Project, simulate: Any) -> None:
    _write(simulate.sample(200, 0.0, seed=3), watched.path("batches/same.csv"))
    _once(orch)
    (same,) = _checks(orch)
    assert same["monitor"] == "batch-drift" and same["drifted"] is False, same
    assert same["event_id"] is None

    _write(simulate.sample(200, 4.0, seed=4), watched.path("batches/shifted.csv"))
    _once(orch)
    shifted = _checks(orch)[0]
    assert shifted["drifted"] is True and shifted["event_id"] is not None, shifted
    assert shifted["source"].endswith("shifted.csv")

    shown = orch("monitors", str(shifted["id"]))
    assert shown.code == 0, shown.describe()
    assert simulate.FEATURE in shown.out and "DRIFT" in shown.out
    report = orch("monitors", str(shifted["id"]), "--json").json["report"]
    assert report["drifted_features"] == [simulate.FEATURE]
    assert {f["feature"] for f in report["features"]} >= {simulate.FEATURE, "mean radius"}
    # no trigger listens for "drift" in watch.py: the event is kept and dropped visibly
    events = orch("events", "--json").json["events"]
    drift = next(e for e in events if e["id"] == shifted["event_id"])
    assert drift["name"] == "drift" and drift["data"]["drifted_features"] == [simulate.FEATURE]

    _once(orch)  # the same files again: no new checks
    assert len(_checks(orch)) == 2


def test_metric_drop_on_feedback_starts_retraining(
    orch: Orch, watched: Project, simulate: Any
) -> None:
    _write(simulate.sample(200, 0.0, seed=5), watched.path("feedback/ok.csv"))
    _once(orch)
    ok = _checks(orch)[0]
    assert ok["kind"] == "metric" and ok["drifted"] is False and ok["value"] >= 0.9, ok

    _write(simulate.sample(200, 4.0, seed=6), watched.path("feedback/bad.csv"))
    _once(orch)  # the check fires and records the event
    _once(orch)  # the trigger starts the run
    bad = _checks(orch)[0]
    assert bad["drifted"] is True and bad["value"] < 0.9, bad
    event = next(e for e in orch("events", "--json").json["events"] if e["id"] == bad["event_id"])
    assert event["name"] == "metric_drop" and event["status"] == "started", event
    assert event["data"]["files"] == [str(watched.path("feedback/bad.csv").resolve())]
    run = orch.show(event["run_id"])
    assert run["trigger"]["trigger"] == "on-drop" and run["status"] == "succeeded"


def test_monitor_without_production_model_waits(orch: Orch, project: Project) -> None:
    project.write(
        "watch.py",
        """
        from orchestrator import DriftMonitor
        drift = DriftMonitor(name="d", model="nobody", batches="b/*.csv")
        """,
    )
    project.path("b").mkdir()
    project.path("b/x.csv").write_text("a\n1\n")
    res = orch("daemon", "watch.py", "--once")
    assert res.code == 0, res.describe()
    assert orch("monitors", "--json").json["checks"] == []


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ('DriftMonitor(name="d", model="m")', "give exactly one of requests= or batches="),
        (
            'MetricMonitor(name="m", model="m", feedback="f/*.csv", threshold=1, metric="auc")',
            "unknown metric 'auc'",
        ),
    ],
)
def test_bad_monitor_definitions_are_clear_errors(
    orch: Orch, project: Project, definition: str, message: str
) -> None:
    project.write(
        "watch.py", f"from orchestrator import DriftMonitor, MetricMonitor\nm = {definition}\n"
    )
    res = orch("daemon", "watch.py", "--once")
    assert res.code != 0
    assert message in res.err and "Traceback" not in res.err, res.describe()


def test_unknown_check_id_is_a_clear_error(orch: Orch) -> None:
    res = orch("monitors", "42")
    assert res.code != 0 and "no monitor check 42" in res.err, res.describe()
