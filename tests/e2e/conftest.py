"""Fixtures of the end-to-end suite.

Every test drives the real `orch` command line in a subprocess, as a user types it, with
`ORCH_HOME` pointing at the test's own temporary folder: a real SQLite file, a real
artifact folder, real user project files. Nothing of the orchestrator is mocked.

* `project`: a temporary user project folder, the working directory of every command;
* `orch`: the CLI runner bound to a fresh ORCH_HOME (see `orchtest.Orch`);
* `demo_project`: `project` holding the standard `pipe.py:demo` and its `helpers.py`.
"""

from __future__ import annotations

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
def orch(tmp_path: Path, project: Project) -> Orch:
    return Orch(tmp_path / "orch-home", project.root)


@pytest.fixture
def demo_project(project: Project) -> Project:
    """`pipe.py:demo`: load -> double -> total <- cleaned <- load, and load -> count.

    `cleaned` calls `helpers.clean` (which calls `helpers._shift` and reads
    `helpers.SCALE`); `count` calls `weight`, imported with `from helpers import weight`.
    """
    project.write("helpers.py", DEMO_HELPERS)
    project.write("pipe.py", DEMO_PIPELINE)
    return project
