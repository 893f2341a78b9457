"""The write path seen from a run: values passed in memory to a consumer in the same
process (no read-back), and a write that fails (file size limit: the kernel's "disk
full") failing its step with one clear error and recording nothing finished."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator import pipeline, step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine
from orchestrator.execution.local import make_executor
from orchestrator.store.metadata import MetadataStore

SEEN: list[int] = []  # ids of the values the consumers were handed


@step(kind="ingest")
def make(rows: int = 50_000) -> pd.DataFrame:
    frame = pd.DataFrame({"x": np.arange(rows), "y": np.arange(rows) * 0.5})
    SEEN.append(id(frame))
    return frame


@step
def clean(frame: pd.DataFrame) -> pd.DataFrame:
    SEEN.append(id(frame))
    out = frame[frame["x"] % 2 == 0]
    SEEN.append(id(out))
    return out


@step
def summarise(frame: pd.DataFrame) -> float:
    SEEN.append(id(frame))
    return float(frame["y"].sum())


@pipeline
def chain():
    summarise(clean(make()))


@pytest.mark.parametrize("executor", ["thread", "sequential"])
def test_a_consumer_in_the_same_process_gets_the_value_not_a_re_read(
    tmp_path: Path, executor: str
) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    artifacts = ArtifactStore(tmp_path / "artifacts")
    engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
    SEEN.clear()
    try:
        result = engine.run(chain.build(), target="chain", executor=executor)
    finally:
        engine.close()
        store.close()
    assert [s.state for s in result.steps] == ["succeeded"] * 3
    assert artifacts.loads == 0  # nothing was decoded from a file
    made, received, cleaned, summarised = SEEN
    assert received == made and summarised == cleaned  # the very objects, not copies
    for s in result.steps:  # and every output was still written, intact
        assert all(artifacts.verify(ref) is None for ref in s.outputs)


FULL_DISK = """
import resource, signal, sys
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator import pipeline, step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine
from orchestrator.execution.local import make_executor
from orchestrator.store.metadata import MetadataStore


@step(kind="ingest")
def big() -> pd.DataFrame:
    return pd.DataFrame({"x": np.zeros(int(sys.argv[2]))})


@step
def total(frame: pd.DataFrame) -> float:
    return float(frame["x"].sum())


@pipeline
def p():
    total(big())


home = Path(sys.argv[1])
store = MetadataStore(f"sqlite:///{home / 'orchestrator.db'}")
artifacts = ArtifactStore(home / "artifacts")
engine = Engine(store, artifacts, lambda name: make_executor(name, artifacts))
if sys.argv[3] == "limit":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))
result = engine.run(p.build(), target="p")
for s in result.steps:
    print(s.name, s.state, s.error or "")
"""


def test_a_write_that_fails_fails_its_step_and_records_nothing_finished(tmp_path: Path) -> None:
    script = tmp_path / "full_disk.py"
    script.write_text(textwrap.dedent(FULL_DISK))

    def run(limit: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, str(script), str(tmp_path), "2000000", limit],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return out.stdout.splitlines()

    big, total = run("limit")
    assert big.startswith(
        "big failed cannot write a pandas:DataFrame artifact under "
        f"{tmp_path / 'artifacts'}: File too large"
    ), big
    assert total.startswith("total skipped"), total
    assert [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()] == []
    # nothing was recorded finished: without the limit, the step runs (no cache hit)
    assert [line.split()[:2] for line in run("none")] == [
        ["big", "succeeded"],
        ["total", "succeeded"],
    ]
