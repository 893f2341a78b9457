"""`orch cache gc`: removes unreferenced artifact files and inline values only.

The demo pipeline's outputs are small lists and sums, which are inline (in the metadata
store, no file); with `n=400` its lists are over the inline limit, so they are files.
"""

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
BIG = ("--param", "n=400")  # lists of 400 ints are files; the sums stay inline


def test_gc_keeps_referenced_artifacts_and_removes_orphans(
    orch: Orch, demo_project: Project
) -> None:
    orch.run("pipe.py:demo", *BIG)
    orch.run("pipe.py:demo", *BIG, "--param", "k=3")
    referenced = sorted(p for p in orch.artifacts.glob("??/*") if p.is_file())
    assert len(referenced) == 4  # load, cleaned, and double for k=2 and k=3

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
    assert "removed 0 of 3 inline artifacts" in res.out  # count, and total for each k
    assert not orphan.exists()
    assert all(p.exists() for p in referenced)

    # nothing referenced was lost: both parameter sets are still fully cached
    assert states(orch.run("pipe.py:demo", *BIG)) == ALL_CACHED
    assert states(orch.run("pipe.py:demo", *BIG, "--param", "k=3")) == ALL_CACHED


def test_gc_keeps_referenced_inline_values_and_prunes_old_ones(
    orch: Orch, demo_project: Project
) -> None:
    old = orch.run("pipe.py:demo")  # every output inline: no file at all
    orch.run("pipe.py:demo", "--param", "k=3")
    assert not [p for p in orch.artifacts.glob("??/*") if p.is_file()]

    res = orch("cache", "gc", "--grace", "0")
    assert res.code == 0, res.describe()
    assert "removed 0 of 0 artifact files" in res.out
    assert "removed 0 of 7 inline artifacts" in res.out  # double, total twice; load, ...
    assert states(orch.run("pipe.py:demo", "--param", "k=3")) == ALL_CACHED

    # only the newest run kept: k=2's double and total are unreferenced, but young
    young = orch("cache", "gc", "--keep-runs", "1")
    assert young.code == 0, young.describe()
    assert "removed 0 of 7 inline artifacts" in young.out
    assert "kept 2 unreferenced inline artifacts younger than 10m (--grace)" in young.out

    gone = orch("cache", "gc", "--keep-runs", "1", "--grace", "0")
    assert gone.code == 0, gone.describe()
    assert "removed 2 of 7 inline artifacts" in gone.out
    assert states(orch.run("pipe.py:demo", "--param", "k=3")) == ALL_CACHED
    again = states(orch.run("pipe.py:demo"))
    assert again == {
        "load": "cached",
        "double": "succeeded",
        "cleaned": "cached",
        "total": "succeeded",
        "count": "cached",
    }
    # the old run's history still holds its value
    shown = orch("artifact", old["run_id"], "double")
    assert shown.code == 0, shown.describe()
    assert "inline in the metadata store" not in shown.out and "[\n  2,\n  4," in shown.out


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
    return list(range(seed, seed + 400)), Slow(n=seed)  # over the inline limit: files


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
    assert "removed 1 of 3 artifact files" in res.out  # xs, Slow and the orphan; the sum is inline
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
    orch.run("pipe.py:demo", *BIG)
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
    assert states(orch.run("pipe.py:demo", *BIG)) == ALL_CACHED
