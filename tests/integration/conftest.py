"""Fixtures of the integration suite (real servers: PostgreSQL, Docker, Dask)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the e2e suite's CLI helpers (`orchtest`) sit in tests/e2e; make them importable here
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from orchtest import Orch, Project  # noqa: E402

# =====================================================================================
# PostgreSQL (integration-only; `pg_server` and `pg_url` live in tests/conftest.py)
#
# * `pg_project`: a temporary user project folder, the working directory of commands;
# * `pg_orch`: the `orch` CLI runner with its own ORCH_HOME and ORCH_DB_URL=`pg_url`,
#   so every command of a test shares one fresh PostgreSQL database.
# =====================================================================================


@pytest.fixture
def pg_project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


@pytest.fixture
def pg_orch(tmp_path: Path, pg_project: Project, pg_url: str) -> Orch:
    orch = Orch(tmp_path / "orch-home", pg_project.root)
    orch.env["ORCH_DB_URL"] = pg_url
    return orch


# ============================ end of PostgreSQL section ===============================
