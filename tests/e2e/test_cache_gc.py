"""`orch cache gc`: removes unreferenced artifact files only."""

from __future__ import annotations

from orchtest import DEMO_STEPS, Orch, Project, states

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
