"""A `FileInput` given by a path relative to the project folder, on Dask workers.

The project folder is where `orch run` is started; the pipeline file lives in a sub-folder.
A step on a worker of a real `LocalCluster` (worker processes with nannies, on loopback)
must read the very file the host hashed, at the path it was given, with the same cache key
as on the host's threads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from orchtest import Orch, Project, states, step_of  # noqa: E402

FLOW = """
import os
from orchestrator import FileInput, pipeline, step

@step(kind="ingest")
def load(path: FileInput) -> dict:
    from distributed import get_worker
    try:
        where = get_worker().address
    except ValueError:
        where = "host"
    return {"path": str(path), "text": path.read_text(), "where": where}

@step
def count(seen: dict) -> int:
    return len(seen["text"])

@pipeline
def files(path: str = "data/train.csv"):
    count(seen=load(path=path))
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    p = Project(tmp_path / "proj")
    p.write("pipelines/flow.py", FLOW)
    p.write("data/train.csv", "x,y\n1,2\n")
    return p


def _orch(tmp_path: Path, name: str, project: Project) -> Orch:
    o = Orch(tmp_path / name, project.root)
    o.env.pop("ORCH_DASK_ADDRESS", None)  # a LocalCluster, never the caller's scheduler
    return o


def _value(doc: dict, name: str) -> dict:
    return json.loads(step_of(doc, name)["outputs"][0]["inline"])


def test_a_relative_file_input_is_read_on_dask_workers_with_the_hosts_cache_key(
    tmp_path: Path, project: Project
) -> None:
    dask = _orch(tmp_path, "dask-home", project)
    doc = dask.run("pipelines/flow.py:files", "--executor", "dask")
    assert states(doc) == {"load": "succeeded", "count": "succeeded"}, doc
    seen = _value(doc, "load")
    assert seen["where"].startswith("tcp://127.0.0.1:"), seen  # it ran on a worker
    assert (seen["path"], seen["text"]) == ("data/train.csv", "x,y\n1,2\n"), seen
    thread = _orch(tmp_path, "thread-home", project)
    other = thread.run("pipelines/flow.py:files", "--executor", "thread")
    assert states(other) == {"load": "succeeded", "count": "succeeded"}, other
    assert _value(other, "load")["text"] == seen["text"]
    assert step_of(other, "load")["cache_key"] == step_of(doc, "load")["cache_key"]


def test_a_missing_relative_file_input_on_dask_is_one_error_naming_step_and_path(
    tmp_path: Path, project: Project
) -> None:
    dask = _orch(tmp_path, "dask-home", project)
    res = dask("run", "pipelines/flow.py:files", "--executor", "dask", "-p", "path=data/no.csv")
    assert res.code != 0, res.describe()
    assert "Traceback" not in res.err + res.out, res.describe()
    assert "load" in res.err + res.out and "data/no.csv" in res.err + res.out, res.describe()
