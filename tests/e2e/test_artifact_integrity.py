"""A damaged or deleted artifact is never used: the step that made it is recomputed.

After a successful run of the demo pipeline the output file of the middle step `double`
is damaged in the artifact folder. The next run must recompute `double` (saying why),
keep its upstream `load` cached, and succeed; the run after that must find everything
intact again, i.e. the recomputation repaired the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from orchtest import DEMO_STEPS, Orch, Project, states, step_of

# it handles the artifact files itself; its object-storage version: test_cache_on_object_storage.py
pytestmark = pytest.mark.local_artifacts


def _garbage_other_size(p: Path) -> None:
    p.write_bytes(b"\x00garbage\xff" * 7)


def _garbage_same_size(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(bytes(b ^ 0x5A for b in data))  # every byte flipped, same length


def _deleted(p: Path) -> None:
    p.unlink()


@pytest.mark.parametrize(
    ("damage", "word"),
    [(_garbage_other_size, "corrupt"), (_garbage_same_size, "corrupt"), (_deleted, "missing")],
    ids=["garbage", "same-size-garbage", "deleted"],
)
def test_damaged_artifact_is_recomputed(
    orch: Orch, demo_project: Project, damage: Callable[[Path], None], word: str
) -> None:
    first = orch.run("pipe.py:demo")
    out = step_of(first, "double")["outputs"][0]
    files = orch.artifact_files(out["hash"])
    assert len(files) == 1, files
    original = files[0].read_bytes()
    damage(files[0])

    run = orch.run("pipe.py:demo")
    assert run["status"] == "succeeded"
    st = states(run)
    assert st["double"] == "succeeded"
    assert st["load"] == "cached"
    # the recomputed output has the same content, so nothing downstream changes
    assert st["total"] == "cached" and st["cleaned"] == "cached" and st["count"] == "cached"
    reason = step_of(run, "double")["reason"]
    assert word in reason and out["hash"][:12] in reason
    assert step_of(run, "double")["outputs"][0]["hash"] == out["hash"]
    assert word in orch.explain(run["run_id"], "double")

    # the recomputation put the right bytes back: the next run trusts everything
    assert files[0].read_bytes() == original
    assert states(orch.run("pipe.py:demo")) == dict.fromkeys(DEMO_STEPS, "cached")


def test_damaged_input_is_not_fed_to_a_step_in_another_process(
    orch: Orch, demo_project: Project
) -> None:
    """With the process executor a child loads its inputs from the store: never bad bytes."""
    orch.run("pipe.py:demo", "--executor", "process")
    load_out = step_of(orch.run("pipe.py:demo"), "load")["outputs"][0]
    [path] = orch.artifact_files(load_out["hash"])
    good = path.read_bytes()
    _garbage_same_size(path)

    run = orch.run("pipe.py:demo", "--executor", "process", "--param", "k=7")
    assert run["status"] == "succeeded"
    assert states(run)["load"] == "succeeded"
    assert "corrupt" in step_of(run, "load")["reason"]
    assert states(run)["double"] == "succeeded"
    assert path.read_bytes() == good
