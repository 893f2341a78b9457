"""A `FileInput` given by a path relative to the project folder, in Docker containers.

The project folder is where `orch run` is started; the pipeline file lives in a sub-folder
(so the code mount alone does not show the data), and the data file is read by a step in a
warm container of the pool and in a container of its own, then on the host's threads and
processes: each must find it at the same relative path, read-only in a container, with the
same cache key.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from orchtest import Orch, Project, states, step_of  # noqa: E402

from tests.integration.test_docker import docker_image  # noqa: E402, F401 - the fixture

FLOW = """
import os
from orchestrator import FileInput, pipeline, step

def _seen(path):
    try:
        with open(path, "r+"):
            writable = True
    except OSError:
        writable = False
    return {"path": str(path), "text": path.read_text(), "writable": writable}

@step(kind="ingest")
def load(path: FileInput) -> dict:
    return {**_seen(path), "uid": os.getuid()}

@step(hints={"user": "0:0"})
def as_root(path: FileInput, before: dict) -> dict:
    return {**_seen(path), "uid": os.getuid()}

@pipeline
def files(path: str = "data/train.csv"):
    as_root(path=path, before=load(path=path))
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    p = Project(tmp_path / "proj")
    p.write("pipelines/flow.py", FLOW)
    p.write("data/train.csv", "x,y\n1,2\n")
    return p


def _orch(tmp_path: Path, name: str, project: Project, image: str) -> Orch:
    o = Orch(tmp_path / name, project.root)
    o.env["ORCH_IMAGE"] = image
    return o


def _value(doc: dict, name: str) -> dict:
    return json.loads(step_of(doc, name)["outputs"][0]["inline"])


@pytest.mark.parametrize("pool", ["1", "0"], ids=["pooled", "per-step"])
def test_a_relative_file_input_is_read_in_a_container_with_the_hosts_cache_key(
    tmp_path: Path,
    project: Project,
    docker_image: str,  # noqa: F811
    pool: str,
) -> None:
    orch = _orch(tmp_path, "docker-home", project, docker_image)
    orch.env["ORCH_DOCKER_POOL"] = pool
    doc = orch.run("pipelines/flow.py:files", "--executor", "docker")
    assert states(doc) == {"load": "succeeded", "as_root": "succeeded"}, doc
    seen = _value(doc, "load")
    assert seen == {"path": "data/train.csv", "text": "x,y\n1,2\n", "writable": False, "uid": 65534}
    assert _value(doc, "as_root") == {**seen, "uid": 0}  # read-only even to root
    for executor in ("thread", "process"):
        local = _orch(tmp_path, f"{executor}-home", project, docker_image)
        other = local.run("pipelines/flow.py:files", "--executor", executor)
        assert states(other) == {"load": "succeeded", "as_root": "succeeded"}, executor
        assert _value(other, "load")["text"] == seen["text"]
        # `as_root` takes `load`'s output, which says whether the file was writable there
        assert step_of(other, "load")["cache_key"] == step_of(doc, "load")["cache_key"], executor


def test_a_missing_relative_file_input_is_one_error_naming_step_and_path(
    tmp_path: Path,
    project: Project,
    docker_image: str,  # noqa: F811
) -> None:
    orch = _orch(tmp_path, "docker-home", project, docker_image)
    res = orch("run", "pipelines/flow.py:files", "--executor", "docker", "-p", "path=data/no.csv")
    assert res.code != 0, res.describe()
    assert "Traceback" not in res.err + res.out, res.describe()
    assert "load" in res.err + res.out and "data/no.csv" in res.err + res.out, res.describe()


def test_a_file_input_outside_the_project_folder_is_one_error_in_a_container(
    tmp_path: Path,
    project: Project,
    docker_image: str,  # noqa: F811
) -> None:
    (tmp_path / "elsewhere.csv").write_text("a\n1\n")
    orch = _orch(tmp_path, "docker-home", project, docker_image)
    doc = orch.run(
        "pipelines/flow.py:files", "--executor", "docker", "-p", "path=../elsewhere.csv", code=1
    )
    error = step_of(doc, "load")["error"]
    assert "step 'load'" in error and "../elsewhere.csv" in error, error
    assert "project folder" in error, error
