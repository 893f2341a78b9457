"""`orch artifact` previews and writes outputs; `orch show` caps long logs; a bad ORCH_HOME."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from orchtest import Orch, Project, step_of

FRAMES = """
import pandas as pd

from orchestrator import pipeline, step


@step
def frame(n: int = 30) -> pd.DataFrame:
    return pd.DataFrame({"a": range(n), "b": [x * 0.5 for x in range(n)]})


@step
def summary(df: pd.DataFrame) -> dict:
    return {"rows": len(df), "mean_b": float(df["b"].mean()), "tags": ["x", "y"]}


@step
def halves(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return df.iloc[:10], df.iloc[10:]


@pipeline
def frames(n: int = 30):
    df = frame(n=n)
    summary(df)
    halves(df)
"""

NOISY = """
from orchestrator import pipeline, step


@step
def noisy(lines: int = 800_000) -> int:
    for i in range(lines):
        print(f"noise line {i:07d} " + "x" * 48)
    return lines


@pipeline
def loud():
    noisy()
"""


def test_artifact_of_a_frame_previews_and_writes_csv_and_parquet(
    orch: Orch, project: Project, tmp_path: Path
) -> None:
    project.write("frames.py", FRAMES)
    run_id = orch.run("frames.py:frames")["run_id"]
    shown = orch("artifact", run_id, "frame")
    assert shown.code == 0, shown.describe()
    assert f"run {run_id} step 'frame': pandas:DataFrame" in shown.out
    assert "30 rows x 2 columns" in shown.out
    assert "4.5" in shown.out and "14.5" not in shown.out  # the first rows only

    wrote = orch("artifact", run_id[:6], "frame", "--to", str(tmp_path / "x.csv"))
    assert wrote.code == 0, wrote.describe()
    back = pd.read_csv(tmp_path / "x.csv", index_col=0)
    assert back["b"].tolist() == [x * 0.5 for x in range(30)]
    assert orch("artifact", run_id, "halves", "1", "--to", str(tmp_path / "h.parquet")).code == 0
    assert pd.read_parquet(tmp_path / "h.parquet")["a"].tolist() == list(range(10, 30))


def test_artifact_of_a_json_value_and_its_errors(
    orch: Orch, project: Project, tmp_path: Path
) -> None:
    project.write("frames.py", FRAMES)
    run_id = orch.run("frames.py:frames")["run_id"]
    shown = orch("artifact", run_id, "summary")
    assert shown.code == 0, shown.describe()
    assert '"mean_b": 7.25' in shown.out and '"rows": 30' in shown.out
    [ref] = step_of(orch.show(run_id), "summary")["outputs"]
    assert "inline" in ref and not orch.artifact_files(ref["hash"])  # small: no file

    assert orch("artifact", run_id, "summary", "--to", str(tmp_path / "s.json")).code == 0
    assert json.loads((tmp_path / "s.json").read_text()) == {
        "rows": 30,
        "mean_b": 7.25,
        "tags": ["x", "y"],
    }
    csv = orch("artifact", run_id, "summary", "--to", str(tmp_path / "s.csv"))
    assert csv.code == 2 and not (tmp_path / "s.csv").exists()
    assert f"error: run {run_id} step 'summary' is a builtins:dict, not a DataFrame" in csv.err
    assert "the stored file's own suffix (.json)" in csv.err
    raw = orch("artifact", run_id, "summary", "--to", str(tmp_path / "s.stored"))
    assert raw.code == 0, raw.describe()
    assert (tmp_path / "s.stored").read_text() == ref["inline"]  # the bytes a file would hold
    typo = orch("artifact", run_id, "sumary")
    assert typo.code == 2
    assert f"error: run {run_id} has no step 'sumary' (did you mean 'summary'?)" in typo.err
    which = orch("artifact", run_id, "halves")
    assert which.code == 2 and f"step 'halves' of run {run_id} has 2 outputs" in which.err
    beyond = orch("artifact", run_id, "halves", "2")
    assert beyond.code == 2 and "has no output 2" in beyond.err
    for res in (csv, typo, which, beyond):
        assert "Traceback" not in res.err and len(res.err.strip().splitlines()) == 1


def test_show_caps_a_huge_step_log_with_a_note(orch: Orch, project: Project) -> None:
    project.write("loud.py", NOISY)  # about 50 MB of prints
    run = orch("run", "loud.py:loud", "--json", timeout=600)
    assert run.code == 0, run.describe()[-2000:]
    run_id = run.json["run_id"]
    shown = orch("show", run_id, timeout=600)
    assert shown.code == 0, shown.describe()[-2000:]
    assert len(shown.out) < 200_000
    assert "noise line 0799999" in shown.out  # the tail is shown
    assert "noise line 0000000" not in shown.out
    assert "799800 earlier lines" in shown.out
    assert f"`orch logs {run_id} noisy` or `orch show {run_id} --full-logs`" in shown.out
    tail = orch("logs", run_id, "noisy", timeout=600)
    assert tail.code == 0 and tail.out.count("\n") == 800_000


@pytest.fixture
def read_only_home(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_an_unusable_orch_home_is_one_error_line(
    orch: Orch, demo_project: Project, tmp_path: Path, read_only_home: Path
) -> None:
    a_file = tmp_path / "home-file"
    a_file.write_text("")
    cases = {
        str(a_file): f"error: ORCH_HOME '{a_file}' is a file, not a folder",
        "/proc/orch-home": "error: ORCH_HOME '/proc/orch-home' is under /proc",
        str(read_only_home): f"error: ORCH_HOME '{read_only_home}' is not writable "
        "(Read-only file system)",
        str(read_only_home / "sub"): f"error: cannot create ORCH_HOME '{read_only_home / 'sub'}' "
        "(Read-only file system)",
    }
    for home, message in cases.items():
        orch.env["ORCH_HOME"] = home
        for args in (("run", "pipe.py:demo"), ("runs",)):
            res = orch(*args)
            assert res.code == 2, (home, args, res.describe())
            assert res.err.strip() == res.err.strip().splitlines()[0], res.err
            assert res.err.startswith(message), (home, res.err)
