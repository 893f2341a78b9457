"""`orch cache gc`: removes unreferenced artifact files only."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from orchtest import DEMO_STEPS, Orch, Project, states, step_of, wait_for

# it handles the artifact files itself; its object-storage version: test_cache_on_object_storage.py
pytestmark = pytest.mark.local_artifacts

ORPHAN = "ff" + "0123456789abcdef" * 2
ALL_CACHED = dict.fromkeys(DEMO_STEPS, "cached")


def test_gc_keeps_referenced_artifacts_and_removes_orphans(
    orch: Orch, demo_project: Project
) -> None:
    orch.run("pipe.py:demo")
    orch.run("pipe.py:demo", "--param", "k=3")
    referenced = sorted(p for p in orch.artifacts.glob("??/*") if p.is_file())
    assert referenced

    orphan = orch.artifacts / ORPHAN[:2] / f"{ORPHAN[:32]}.json"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_text("[1, 2, 3]")
    old = time.time() - 2 * 3600  # left behind long ago, older than the grace period
    os.utime(orphan, (old, old))

    dry = orch("cache", "gc", "--dry-run")
    assert dry.code == 0, dry.describe()
    assert "would remove 1 of" in dry.out
    assert orphan.exists()

    res = orch("cache", "gc")
    assert res.code == 0, res.describe()
    assert f"removed 1 of {len(referenced) + 1} artifact files" in res.out
    assert not orphan.exists()
    assert all(p.exists() for p in referenced)

    # nothing referenced was lost: both parameter sets are still fully cached
    assert states(orch.run("pipe.py:demo")) == ALL_CACHED
    assert states(orch.run("pipe.py:demo", "--param", "k=3")) == ALL_CACHED


def test_gc_on_an_empty_home(orch: Orch, project: Project) -> None:
    res = orch("cache", "gc")
    assert res.code == 0, res.describe()
    assert "removed 0 of 0 artifact files" in res.out


RACE_PIPELINE = """
import time
from pathlib import Path

from pydantic import BaseModel, field_serializer

from orchestrator import pipeline, step

MARKS = Path({marks!r})


class Slow(BaseModel):
    n: int

    @field_serializer("n")
    def _wait(self, n: int) -> int:
        # the first output is written by now, not yet recorded: hold the step here
        (MARKS / "written").write_text("first output written")
        while not (MARKS / "go").exists():
            time.sleep(0.05)
        return n


@step
def make(seed: int = 1) -> tuple[list[int], Slow]:
    return [seed, seed + 1], Slow(n=seed)


@step
def use(xs: list[int]) -> int:
    return sum(xs)


@pipeline
def racing(seed: int = 1):
    xs, _slow = make(seed=seed)
    use(xs)
"""


def test_gc_during_a_run_keeps_what_the_run_will_record(
    orch: Orch, project: Project, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    project.write("race.py", RACE_PIPELINE.format(marks=str(marks)))
    log = tmp_path / "run"
    proc = orch.popen("run", "race.py:racing", "--executor", "process", "--json", log=log)
    try:
        wait_for(lambda: (marks / "written").exists(), "the step to write its first output")
        live = [r for r in orch.runs() if r["status"] == "running"]
        assert len(live) == 1
        res = orch("cache", "gc")
        assert res.code == 0, res.describe()
        assert "removed 0 of 1 artifact files" in res.out
        assert "kept 1 unreferenced artifact file younger than 10m (--grace)" in res.out
        assert f"run {live[0]['run_id']} is still running" in res.out
    finally:
        (marks / "go").write_text("go")
        proc.wait(timeout=120)
    assert proc.returncode == 0, log.with_suffix(".err").read_text()
    run = orch.show(live[0]["run_id"])
    assert run["status"] == "succeeded"
    assert step_of(run, "use")["state"] == "succeeded"
    again = orch.run("race.py:racing", "--executor", "process")
    assert states(again) == {"make": "cached", "use": "cached"}

    # once no run is live, an unreferenced file goes at once with --grace 0
    orphan = orch.artifacts / ORPHAN[:2] / f"{ORPHAN[:32]}.json"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_text("[4]")
    kept = orch("cache", "gc")
    assert "kept 1 unreferenced artifact file younger than 10m (--grace)" in kept.out
    assert "still running" not in kept.out
    assert orphan.exists()
    res = orch("cache", "gc", "--grace", "0")
    assert res.code == 0, res.describe()
    assert "removed 1 of 4 artifact files" in res.out
    assert not orphan.exists()
    assert states(orch.run("race.py:racing", "--executor", "process")) == {
        "make": "cached",
        "use": "cached",
    }


def test_gc_grace_must_be_a_duration(orch: Orch, project: Project) -> None:
    res = orch("cache", "gc", "--grace", "ten minutes")
    assert res.code == 2, res.describe()
    assert "error: --grace 'ten minutes' is not a duration" in res.err
    assert "Traceback" not in res.err


def test_gc_removes_the_temp_files_of_writes_a_kill_interrupted(
    orch: Orch, demo_project: Project
) -> None:
    orch.run("pipe.py:demo")
    old = time.time() - 2 * 3600
    torn = orch.artifacts / ".tmp-abc123"  # a write killed before its rename
    torn.write_bytes(b"x" * 1000)
    torn_adopt = orch.artifacts / "ab" / ".tmp-adopt-77-ab12"
    torn_adopt.parent.mkdir(parents=True, exist_ok=True)
    torn_adopt.write_bytes(b"y" * 10)
    for path in (torn, torn_adopt):
        os.utime(path, (old, old))
    live = orch.artifacts / ".tmp-live"  # a write in flight right now
    live.write_bytes(b"z")

    dry = orch("cache", "gc", "--dry-run")
    assert dry.code == 0, dry.describe()
    assert "would remove 2 temporary files of interrupted writes" in dry.out
    assert torn.exists() and torn_adopt.exists()

    res = orch("cache", "gc")
    assert res.code == 0, res.describe()
    assert "removed 2 temporary files of interrupted writes" in res.out
    assert not torn.exists() and not torn_adopt.exists()
    assert live.exists()
    assert states(orch.run("pipe.py:demo")) == ALL_CACHED
