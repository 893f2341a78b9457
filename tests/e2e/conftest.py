"""Fixtures of the end-to-end suite.

Every test drives the real `orch` command line in a subprocess, as a user types it, with
`ORCH_HOME` pointing at the test's own temporary folder: a real SQLite file, a real
artifact folder, real user project files. Nothing of the orchestrator is mocked.

* `project`: a temporary user project folder, the working directory of every command;
* `orch`: the CLI runner bound to a fresh ORCH_HOME (see `orchtest.Orch`); its artifacts
  are in a fresh bucket of the test S3 server (`ORCH_ARTIFACTS=s3://...`) for a test
  marked `object_store`, or for every test when `ORCH_TEST_ARTIFACTS=s3` (to run a whole
  module on object storage: `ORCH_TEST_ARTIFACTS=s3 pytest tests/e2e/test_cache_reuse.py`),
  except a test marked `local_artifacts` (it handles the artifact folder's files itself;
  its object-storage counterpart is in test_cache_on_object_storage.py);
* `demo_project`: `project` holding the standard `pipe.py:demo` and its `helpers.py`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# `orchtest` (the suite's helpers) sits next to this file; make it importable whatever
# pytest's import mode is.
sys.path.insert(0, str(Path(__file__).parent))

from orchtest import DEMO_HELPERS, DEMO_PIPELINE, Orch, Project  # noqa: E402


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


@pytest.fixture
def orch(request: pytest.FixtureRequest, tmp_path: Path, project: Project) -> Orch:
    runner = Orch(tmp_path / "orch-home", project.root)
    on_s3 = os.environ.get("ORCH_TEST_ARTIFACTS") == "s3"
    on_s3 = on_s3 and request.node.get_closest_marker("local_artifacts") is None
    if on_s3 or request.node.get_closest_marker("object_store") is not None:
        bucket = request.getfixturevalue("s3_bucket")
        runner.env.update(bucket.env, ORCH_ARTIFACTS=bucket.url)
        runner.bucket = bucket
    return runner


@pytest.fixture
def demo_project(project: Project) -> Project:
    """`pipe.py:demo`: load -> double -> total <- cleaned <- load, and load -> count.

    `cleaned` calls `helpers.clean` (which calls `helpers._shift` and reads
    `helpers.SCALE`); `count` calls `weight`, imported with `from helpers import weight`.
    """
    project.write("helpers.py", DEMO_HELPERS)
    project.write("pipe.py", DEMO_PIPELINE)
    return project
