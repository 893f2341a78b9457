"""`orch reproduce --image`: a rebuild in a container holding the recorded package versions.

On a real Docker engine with the test image. The version is registered by a run whose
steps ran in a container holding another version of a small pure-Python package than
this machine has (shellingham, which the first step imports and whose version becomes a
feature of the model's data); the run's record is then set to that version, as the
recorder would have written it had the runner itself held it. A rebuild here differs;
`--image` builds (or reuses, by its tag) an image with the recorded version and the
rebuild there is identical.
"""

from __future__ import annotations

import importlib.metadata
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cache.snapshot import installed_packages
from orchestrator.errors import ExecutorError
from orchestrator.execution.pinned import pinned_image
from tests.integration.test_docker import docker_image  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from orchtest import CliResult, Orch, Project  # noqa: E402

PACKAGE = "shellingham"
OTHER = "1.5.3"  # on the package index, and not what this machine has

FLOW = """
import importlib.metadata

import pandas as pd
import shellingham
from sklearn.base import BaseEstimator
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from orchestrator import pipeline, step
from orchestrator.steps.deploy import deploy_model


@step(kind="ingest")
def load() -> pd.DataFrame:
    df = load_iris(as_frame=True).frame
    assert callable(shellingham.detect_shell)
    version = importlib.metadata.version("shellingham")
    df["stamp"] = float(version.rsplit(".", 1)[-1])
    return df


@step(kind="train")
def fit(df: pd.DataFrame) -> BaseEstimator:
    return LogisticRegression(max_iter=500).fit(df.drop(columns="target"), df["target"])


@step(kind="evaluate")
def score(model: BaseEstimator, df: pd.DataFrame) -> dict[str, float]:
    return {"accuracy": float(model.score(df.drop(columns="target"), df["target"]))}


@pipeline
def stamped():
    df = load()
    model = fit(df)
    deploy_model(model, score(model, df), data=df, model_name="stamped")
"""


def _recorded() -> dict[str, str]:
    return installed_packages() | {PACKAGE: OTHER}


@pytest.fixture(scope="module")
def other_image(docker_image: str) -> str:  # noqa: F811 - the fixture
    """The test image with the other version: what the original run's steps ran in."""
    pinned = pinned_image(docker_image, _recorded(), {PACKAGE}, log=lambda _: None)
    # the other version, and whatever else this machine holds at another version than the
    # image (none where both were installed from one index; some where this machine's
    # packages are older), as a rebuild from this machine's record would pin
    assert pinned.pins[PACKAGE] == OTHER, pinned
    assert pinned.pins == {n: v for n, v in _recorded().items() if n in pinned.pins}, pinned
    return pinned.image


def _version_in(image: str) -> str:
    code = f"import importlib.metadata as m; print(m.version('{PACKAGE}'))"
    cmd = ["docker", "run", "--rm", "--network", "none", image, "python3", "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def _record_other_version(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        (packages,) = conn.execute("SELECT packages FROM run_environments").fetchone()
        recorded = json.loads(packages)
        assert recorded[PACKAGE] == importlib.metadata.version(PACKAGE) != OTHER
        conn.execute(
            "UPDATE run_environments SET packages = ?", (json.dumps(recorded | {PACKAGE: OTHER}),)
        )


def _reproduce(orch: Orch, *args: str) -> CliResult:
    res = orch("reproduce", "stamped:1", *args, timeout=900)
    assert "Traceback" not in res.err, res.describe()
    return res


@pytest.fixture
def registered(tmp_path: Path, other_image: str, docker_image: str) -> Orch:  # noqa: F811
    """Model `stamped` v1, its steps run in `other_image`, its record saying so."""
    project = Project(tmp_path / "proj")
    project.write("flow.py", FLOW)
    orch = Orch(tmp_path / "home", project.root)
    orch.env["ORCH_IMAGE"] = other_image
    res = orch("run", "flow.py:stamped", "--executor", "docker", "--json", timeout=600)
    assert res.code == 0, res.describe()
    _record_other_version(orch.db)
    orch.env["ORCH_IMAGE"] = docker_image  # the base image of `--image`
    return orch


def test_the_pinned_image_holds_the_recorded_version(other_image: str) -> None:
    assert _version_in(other_image) == OTHER
    assert importlib.metadata.version(PACKAGE) != OTHER


def test_reproduce_in_an_image_of_the_recorded_versions_is_identical(
    registered: Orch, other_image: str
) -> None:
    here = importlib.metadata.version(PACKAGE)
    line = _reproduce(registered, "--verify").err.strip().splitlines()
    assert len(line) == 1, line
    assert line[0].startswith("error: model 'stamped' v1 was built with other package versions")
    assert f"{PACKAGE} {OTHER} (installed: {here})" in line[0] and "--image" in line[0]

    res = _reproduce(registered, "--image", "--verify", "--json")
    assert res.code == 0, res.describe()
    doc: dict[str, Any] = res.json
    assert doc["image"] == other_image  # the same pins on the same base: reused by its tag
    assert doc["pinned"][PACKAGE] == OTHER
    assert doc["identical"] is True and doc["verdict"] == "identical"
    assert [s["step"] for s in doc["steps"]] == ["load", "fit"]

    text = _reproduce(registered, "--image", "--verify")
    assert text.code == 0 and text.out.strip().splitlines()[-1] == "identical", text.describe()
    assert f"ran in image {other_image} (pinned: " in text.out
    assert f"{PACKAGE}=={OTHER}" in text.out


def test_the_same_rebuild_here_differs_at_the_step_importing_the_package(
    registered: Orch,
) -> None:
    res = _reproduce(registered, "--ignore-packages", "--verify", "--json")
    assert res.code == 1, res.describe()
    first = res.json["first_difference"]
    assert first["step"] == "load" and first["reason"] == "package", first


def test_a_recorded_version_that_cannot_be_installed_is_one_error(docker_image: str) -> None:  # noqa: F811
    with pytest.raises(ExecutorError) as err:
        pinned_image(docker_image, {PACKAGE: "0.0.0.999"}, set(), log=lambda _: None)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"recorded package {PACKAGE}==0.0.0.999 cannot be installed: ")


def test_no_docker_engine_is_one_error(tmp_path: Path, registered: Orch) -> None:
    registered.env["DOCKER_HOST"] = f"unix://{tmp_path}/no-such.sock"
    res = _reproduce(registered, "--image")
    assert res.code == 2, res.describe()
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: --image needs a Docker engine, and none answers: "
    ), res.describe()
