"""A damaged or deleted artifact is never used: the step that made it is recomputed.

After a successful run of the demo pipeline (`n=400`: its lists are over the inline
limit, so they are files) the output file of the middle step `double` is damaged in the
artifact folder. The next run must recompute `double` (saying why), keep its upstream
`load` cached, and succeed; the run after that must find everything intact again, i.e.
the recomputation repaired the file. A small output is inline (its bytes in the
metadata store's rows): damaged there, it is caught the same way, and a read of it
names the run and step.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from orchtest import DEMO_STEPS, Orch, Project, states, step_of

# it handles the artifact files itself; its object-storage version: test_cache_on_object_storage.py
pytestmark = pytest.mark.local_artifacts

BIG = ("--param", "n=400")


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
    first = orch.run("pipe.py:demo", *BIG)
    out = step_of(first, "double")["outputs"][0]
    files = orch.artifact_files(out["hash"])
    assert len(files) == 1, files
    original = files[0].read_bytes()
    damage(files[0])

    run = orch.run("pipe.py:demo", *BIG)
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
    assert states(orch.run("pipe.py:demo", *BIG)) == dict.fromkeys(DEMO_STEPS, "cached")


def test_damaged_input_is_not_fed_to_a_step_in_another_process(
    orch: Orch, demo_project: Project
) -> None:
    """With the process executor a child loads its inputs from the store: never bad bytes."""
    orch.run("pipe.py:demo", *BIG, "--executor", "process")
    load_out = step_of(orch.run("pipe.py:demo", *BIG), "load")["outputs"][0]
    [path] = orch.artifact_files(load_out["hash"])
    good = path.read_bytes()
    _garbage_same_size(path)

    run = orch.run("pipe.py:demo", *BIG, "--executor", "process", "--param", "k=7")
    assert run["status"] == "succeeded"
    assert states(run)["load"] == "succeeded"
    assert "corrupt" in step_of(run, "load")["reason"]
    assert states(run)["double"] == "succeeded"
    assert path.read_bytes() == good


def _damage_inline(db: Path, table: str, where: str, value: str) -> str:
    """Give the first inline output of the row `where` in `table` other bytes; the old."""
    with sqlite3.connect(db) as conn:
        [(outputs,)] = conn.execute(f"SELECT outputs FROM {table} WHERE {where}").fetchall()
        outs = json.loads(outputs)
        old, outs[0]["inline"] = outs[0]["inline"], value
        conn.execute(f"UPDATE {table} SET outputs = ? WHERE {where}", (json.dumps(outs),))
    return str(old)


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_damaged_inline_value_in_the_cache_is_recomputed(
    orch: Orch, demo_project: Project, executor: str
) -> None:
    first = orch.run("pipe.py:demo", "--executor", executor)
    out = step_of(first, "load")["outputs"][0]
    assert "inline" in out and not orch.artifact_files(out["hash"])  # small: no file
    key = step_of(first, "load")["cache_key"]
    good = _damage_inline(orch.db, "cache_entries", f"cache_key = '{key}'", "[9]")

    run = orch.run("pipe.py:demo", "--executor", executor, "--param", "k=7")
    st = states(run)
    assert st["load"] == "succeeded" and st["double"] == "succeeded"
    assert st["cleaned"] == "cached" and st["count"] == "cached"
    reason = step_of(run, "load")["reason"]
    assert "corrupt" in reason and out["hash"][:12] in reason
    assert "inline value in the metadata store" in reason
    assert step_of(run, "load")["outputs"][0] == out | {"inline": good}
    doubled = orch("artifact", run["run_id"], "double", "--to", str(orch.home / "d.json"))
    assert doubled.code == 0, doubled.describe()
    assert json.loads((orch.home / "d.json").read_text()) == [7, 14, 21, 28, 35]  # not [63]
    again = orch.run("pipe.py:demo", "--executor", executor)
    assert states(again) == dict.fromkeys(DEMO_STEPS, "cached")


def test_damaged_inline_value_is_never_read(orch: Orch, demo_project: Project) -> None:
    first = orch.run("pipe.py:demo")
    run_id = first["run_id"]
    out = step_of(first, "load")["outputs"][0]
    _damage_inline(orch.db, "step_runs", f"run_id = '{run_id}' AND name = 'load'", "[9]")

    shown = orch("artifact", run_id, "load")
    assert shown.code != 0 and "Traceback" not in shown.err
    assert f"run {run_id} step 'load'" in shown.err and out["hash"][:12] in shown.err
    assert "corrupt (content hash differs): its inline value in the metadata store" in shown.err
    # the cache entry holds its own, intact copy: a new run still trusts it
    assert states(orch.run("pipe.py:demo")) == dict.fromkeys(DEMO_STEPS, "cached")
