"""Outputs written in the background: the next step starts while a large output of
another is still being written, nothing is recorded finished before its file is in
place (even when the runner is killed mid-write), and a step's Parquet choice holds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator import pipeline, step
from orchestrator.artifacts.store import ArtifactRef, ArtifactStore
from orchestrator.engine.loop import Engine, RunResult
from orchestrator.execution.local import make_executor
from orchestrator.store.metadata import MetadataStore

ROWS = 3_000_000  # 4 float columns: a 96 MB frame, written for tens of milliseconds at least
RETURNED: dict[str, int] = {}  # when `big` returned its frame (ns, the file clock's time)


@step(kind="ingest")
def big(rows: int = ROWS) -> pd.DataFrame:
    frame = pd.DataFrame({c: np.full(rows, float(i)) for i, c in enumerate("abcd")})
    RETURNED["big"] = time.time_ns()
    return frame


@step
def tick() -> int:
    return time.time_ns()  # when this independent step started, stored as its output


@step(hints={"serializer": "parquet"})
def as_parquet(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.head(1000)


@step
def total(frame: pd.DataFrame) -> float:
    return float(frame["d"].sum())


@pipeline
def overlap():
    tick()  # ready steps start last declared first: big, then tick
    big()


@pipeline
def chosen():
    total(as_parquet(big(rows=5000)))


def _run(home: Path, pipe: Any, executor: str) -> tuple[RunResult, ArtifactStore]:
    store = MetadataStore(f"sqlite:///{home / 'orchestrator.db'}")
    artifacts = ArtifactStore(home / "artifacts")
    engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
    try:
        return engine.run(pipe.build(), target=pipe.name, executor=executor), artifacts
    finally:
        engine.close()
        store.close()


def test_an_independent_step_starts_while_a_large_output_is_written(tmp_path: Path) -> None:
    result, artifacts = _run(tmp_path, overlap, "sequential")
    steps = {s.name: s for s in result.steps}
    assert {s.state for s in result.steps} == {"succeeded"}
    started = artifacts.get(steps["tick"].outputs[0])
    (ref,) = steps["big"].outputs
    written = artifacts.path(ref).stat().st_mtime_ns  # the last byte of big's file
    assert started > RETURNED["big"]  # tick ran after big had computed its frame ...
    assert started < written  # ... and before big's file was finished: the write overlapped
    assert artifacts.verify(ref) is None and artifacts.loads == 1  # tick's int, no frame


def test_a_step_s_parquet_choice_is_kept_through_a_background_write(tmp_path: Path) -> None:
    result, artifacts = _run(tmp_path, chosen, "thread")
    steps = {s.name: s for s in result.steps}
    assert {s.state for s in result.steps} == {"succeeded"}
    (ref,) = steps["as_parquet"].outputs
    assert ref.serializer == "parquet" and artifacts.path(ref).suffix == ".parquet"
    assert steps["big"].outputs[0].serializer == "arrow"
    back = artifacts.get(ref)
    pd.testing.assert_frame_equal(back, big.fn(rows=5000).head(1000))


KILLED_MID_WRITE = """
import os, signal, sys, time
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator import pipeline, step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine
from orchestrator.execution.local import make_executor
from orchestrator.store.metadata import MetadataStore

HOME = Path(sys.argv[1])


@step(kind="ingest")
def big() -> pd.DataFrame:
    return pd.DataFrame({c: np.full(3_000_000, float(i)) for i, c in enumerate("abcd")})


@step
def small() -> int:
    return 7


@step
def crash() -> int:
    if sys.argv[2] == "kill":  # big's write is in flight: its temporary file is there
        for _ in range(500):  # the writer thread may not have made it yet (a loaded machine)
            temps = [p.name for p in (HOME / "artifacts").glob(".tmp-*")]
            if temps or list((HOME / "artifacts").glob("*/*.arrow")):
                break
            time.sleep(0.01)
        (HOME / "temps-at-kill").write_text(" ".join(temps))
        os.kill(os.getpid(), signal.SIGKILL)
    return 1


@pipeline
def p():
    crash()  # ready steps start last declared first: small, big, then crash
    big()
    small()


store = MetadataStore(f"sqlite:///{HOME / 'orchestrator.db'}")
artifacts = ArtifactStore(HOME / "artifacts")
engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
result = engine.run(p.build(), target="p", executor="sequential")
for s in result.steps:
    print(s.name, s.state)
"""


def _finished(home: Path) -> dict[str, list[dict[str, Any]]]:
    """Every step run the store records finished, with the outputs it names."""
    store = MetadataStore(f"sqlite:///{home / 'orchestrator.db'}")
    try:
        out: dict[str, list[dict[str, Any]]] = {}
        for run in store.list_runs(limit=100):
            for row in store.step_runs(run["id"]):
                if row["state"] in ("succeeded", "cached"):
                    out.setdefault(row["name"], []).extend(row["outputs"] or [])
        return out
    finally:
        store.close()


def test_a_runner_killed_during_a_background_write_records_nothing_unwritten(
    tmp_path: Path,
) -> None:
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED_MID_WRITE))

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), str(tmp_path), mode],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "ORCH_LOG": "warning"},
        )

    killed = run("kill")
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "temps-at-kill").read_text().strip()  # killed with a write in flight
    artifacts = ArtifactStore(tmp_path / "artifacts")
    finished = _finished(tmp_path)
    assert "big" not in finished and "crash" not in finished
    for outputs in finished.values():  # whatever is recorded finished has its file, intact
        for o in outputs:
            assert artifacts.verify(ArtifactRef.from_json(o)) is None
    again = run("none")
    assert again.returncode == 0, again.stderr
    states = dict(line.split() for line in again.stdout.splitlines())
    assert states["big"] == "succeeded"  # computed again: it had never been recorded finished
    assert states["crash"] == "succeeded"
