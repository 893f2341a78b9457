"""`orch reproduce --verify` of a model version whose steps ran in warm containers.

The iris project of tests/e2e/reproject.py, run with `--executor docker` on a real Docker
engine (the pool); its source files are edited afterwards, and the version is rebuilt from
its snapshot and found identical, step by step.
"""

from __future__ import annotations

from typing import Any

from orchtest import Orch, Project
from reproject import LINEAGE, write_project

from tests.integration.test_docker import docker_image, orch, project  # noqa: F401


def _outputs(doc: dict[str, Any]) -> dict[str, list[str]]:
    return {s["name"]: [o["hash"] for o in s["outputs"]] for s in doc["steps"]}


def test_version_made_in_pooled_containers_is_rebuilt_identically_after_an_edit(
    project: Project,  # noqa: F811
    orch: Orch,  # noqa: F811
) -> None:
    write_project(project)
    # an absolute path: a container sees the project folder at its host path, but its
    # working folder is its own (a relative FileInput is resolved there; see the note)
    data = f"path={project.root / 'iris.csv'}"
    run = orch.run("flow.py:iris", "--param", data, "--executor", "docker")
    assert run["status"] == "succeeded"
    assert orch.show(run["run_id"])["executor"] == "docker"
    project.edit("helpers.py", "* 10.0", "* 0.5")
    project.edit("flow.py", "max_iter=500", "max_iter=50, tol=0.5")

    res = orch("reproduce", "iris:1", "--verify", "--json", timeout=600)
    assert res.code == 0 and "Traceback" not in res.err, res.describe()
    doc = res.json
    assert doc["identical"] is True and doc["verdict"] == "identical", doc
    assert doc["sources"] == ["flow.py", "helpers.py"]
    made = _outputs(run)
    assert {s["step"]: s["rebuilt"] for s in doc["steps"]} == {k: made[k] for k in LINEAGE}
