"""`orch reproduce MODEL:VERSION [--verify]` as a user types it, on real stores.

The project is a small iris pipeline (tests/e2e/reproject.py: the dataset shipped with
scikit-learn as `iris.csv`, a `FileInput` step, a feature step calling a helper module,
a deploy step registering model `iris`). Each test makes its own version, then changes
the world the way a user would: edits the source files, deletes the data file, or
(since another scikit-learn cannot be installed here) edits the package versions
recorded in the store.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from orchtest import CliResult, Orch, Project
from reproject import LINEAGE, write_project


def outputs(doc: dict[str, Any]) -> dict[str, list[str]]:
    """`{step: [output hash, ...]}` of a `run --json` document."""
    return {s["name"]: [o["hash"] for o in s["outputs"]] for s in doc["steps"]}


def reproduce(orch: Orch, ref: str, *extra: str) -> CliResult:
    res = orch("reproduce", ref, *extra, timeout=300)
    assert "Traceback" not in res.err, res.describe()
    return res


def one_error(res: CliResult) -> str:
    """The single `error:` line of a failed command (exit 2)."""
    assert res.code == 2, res.describe()
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.describe()
    return lines[0]


@pytest.fixture
def iris(project: Project, orch: Orch) -> dict[str, Any]:
    """Model `iris` v1 registered by one run of the project; that run's document."""
    write_project(project)
    return orch.run("flow.py:iris", "--param", "C=0.5")


def test_version_is_rebuilt_identically_after_its_source_files_were_edited(
    project: Project, orch: Orch, iris: dict[str, Any]
) -> None:
    first = outputs(iris)
    project.edit("helpers.py", "* 10.0", "* 20.0")
    project.edit("flow.py", "max_iter=500", "max_iter=50, tol=0.5")
    edited = outputs(orch.run("flow.py:iris", "--param", "C=0.5"))
    assert edited["features"] != first["features"] and edited["fit"] != first["fit"]

    res = reproduce(orch, "iris:1", "--verify", "--json")
    assert res.code == 0, res.describe()
    doc = res.json
    assert (doc["model"], doc["version"], doc["run_id"]) == ("iris", 1, iris["run_id"])
    assert doc["identical"] is True and doc["first_difference"] is None
    assert doc["verdict"] == "identical"
    assert [s["step"] for s in doc["steps"]] == LINEAGE
    for s in doc["steps"]:
        assert s["original"] == s["rebuilt"] == first[s["step"]], s
    assert doc["sources"] == ["flow.py", "helpers.py"]

    text = reproduce(orch, "iris:v1", "--verify")
    assert text.code == 0 and text.out.strip().splitlines()[-1] == "identical", text.describe()


def test_snapshots_store_each_source_text_once(
    project: Project, orch: Orch, iris: dict[str, Any]
) -> None:
    project.edit("helpers.py", "* 10.0", "* 30.0")
    orch.run("flow.py:iris", "--param", "C=0.5")  # v2: flow.py unchanged, helpers.py edited
    with sqlite3.connect(orch.db) as db:
        files = db.execute("SELECT version, path, hash FROM model_sources ORDER BY 1, 2").fetchall()
        texts = {h: t for h, t in db.execute("SELECT hash, text FROM source_texts")}
    assert [(v, p) for v, p, _ in files] == [
        (1, "flow.py"), (1, "helpers.py"), (2, "flow.py"), (2, "helpers.py"),
    ]  # fmt: skip
    by = {(v, p): h for v, p, h in files}
    assert (
        by[(1, "flow.py")] == by[(2, "flow.py")] and by[(1, "helpers.py")] != by[(2, "helpers.py")]
    )
    assert len(texts) == 3
    assert "* 10.0" in texts[by[(1, "helpers.py")]] and "* 30.0" in texts[by[(2, "helpers.py")]]


def test_nondeterministic_step_is_named_as_the_first_difference(
    project: Project, orch: Orch
) -> None:
    write_project(project)
    run = orch.run("flow.py:iris", "--param", "jitter=true")

    res = reproduce(orch, "iris:1", "--verify", "--json")
    assert res.code == 1, res.describe()
    doc = res.json
    assert doc["identical"] is False
    first = doc["first_difference"]
    assert (first["step"], first["reason"]) == ("features", "nondeterminism"), first
    assert first["original"] == outputs(run)["features"] != first["rebuilt"]
    steps = {s["step"]: s for s in doc["steps"]}
    assert steps["load"]["identical"] is True
    assert (steps["fit"]["identical"], steps["fit"]["reason"]) == (False, "data")

    text = reproduce(orch, "iris:1", "--verify")
    assert text.code == 1, text.describe()
    assert (
        text.out.strip()
        .splitlines()[-1]
        .startswith("differs: step 'features' is the first whose output differs (nondeterminism: ")
    ), text.describe()


def test_missing_or_changed_input_is_one_error_naming_input_and_step(
    project: Project, orch: Orch, iris: dict[str, Any]
) -> None:
    data = project.path("iris.csv")
    original = data.read_text()
    data.unlink()
    line = one_error(reproduce(orch, "iris:1", "--verify"))
    assert line.startswith("error: model 'iris' v1: input 'path' of step 'load' is gone: ")
    assert f"{data} (content " in line and "is not there any more" in line

    data.write_text(original.replace("5.1", "5.2", 1))
    line = one_error(reproduce(orch, "iris:1"))
    assert "input 'path' of step 'load' is gone" in line and "now holds other data" in line


def _set_recorded_version(db: Path, package: str, version: str) -> str:
    """Edit the package version recorded for the store's one run; the true version."""
    with sqlite3.connect(db) as conn:
        (packages,) = conn.execute("SELECT packages FROM run_environments").fetchone()
        recorded = json.loads(packages)
        true = recorded[package]
        conn.execute(
            "UPDATE run_environments SET packages = ?", (json.dumps(recorded | {package: version}),)
        )
    return str(true)


def test_package_mismatch_is_reported_before_anything_runs(
    project: Project, orch: Orch, iris: dict[str, Any]
) -> None:
    installed = _set_recorded_version(orch.db, "scikit-learn", "0.20.0")
    project.path("iris.csv").unlink()  # were anything read or run, this would be the error
    line = one_error(reproduce(orch, "iris:1", "--verify"))
    assert line == (
        f"error: model 'iris' v1 was built with other package versions: scikit-learn 0.20.0 "
        f"(installed: {installed}); install those, pass --image to rebuild in a container "
        "with them, or --ignore-packages to rebuild anyway"
    )
    write_project(project)
    res = reproduce(orch, "iris:1", "--ignore-packages", "--json")
    assert res.code == 0, res.describe()
    assert res.json["package_mismatches"] == [f"scikit-learn 0.20.0 (installed: {installed})"]
    assert res.json["identical"] is True


def test_unknown_model_version_or_reference_is_one_error(orch: Orch, iris: dict[str, Any]) -> None:
    assert one_error(reproduce(orch, "irs:1")) == (
        "error: no model 'irs' is registered (did you mean 'iris'?)"
    )
    assert "no version 7 of model 'iris'" in one_error(reproduce(orch, "iris:7"))
    assert "model 'iris' has no alias 'best'" in one_error(reproduce(orch, "iris:best"))
    assert one_error(reproduce(orch, ":1")) == (
        "error: ':1' names no model: give MODEL:VERSION, e.g. iris:3"
    )


SHARED = """
def shift(v: float) -> float:
    return v + 1.0
"""

LIBFLOW = """
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression

import shared
from orchestrator import pipeline, step
from orchestrator.steps.deploy import deploy_model


@step(kind="ingest")
def make() -> pd.DataFrame:
    xs = [1.0, 2.0, 3.0, 4.0]
    return pd.DataFrame({"x": xs, "y": [shared.shift(2 * x) for x in xs]})


@step(kind="train")
def fit(df: pd.DataFrame) -> BaseEstimator:
    return LinearRegression().fit(df[["x"]], df["y"])


@pipeline
def lib():
    deploy_model(fit(make()), {"r2": 1.0}, model_name="lib")
"""


def test_code_outside_the_project_is_not_snapshotted_and_named_when_it_changed(
    tmp_path: Path, project: Project, orch: Orch
) -> None:
    libs = Project(tmp_path / "libs")  # a module of another folder, found on PYTHONPATH
    libs.write("shared.py", SHARED)
    orch.env["PYTHONPATH"] = str(libs.root)
    project.write("libflow.py", LIBFLOW)
    orch.run("libflow.py:lib")
    libs.edit("shared.py", "v + 1.0", "v + 2.0")

    res = reproduce(orch, "lib:1", "--verify", "--json")
    assert res.code == 1, res.describe()
    assert res.json["sources"] == ["libflow.py"]
    first = res.json["first_difference"]
    assert (first["step"], first["reason"]) == ("make", "code"), first
    assert first["detail"] == "code changed: function shared.shift"


def test_version_registered_on_the_process_executor_is_snapshotted_and_rebuilt(
    project: Project, orch: Orch
) -> None:
    write_project(project)
    run = orch.run("flow.py:iris", "--executor", "process")  # deploy runs in a forked child
    project.edit("helpers.py", "* 10.0", "* 0.5")

    res = reproduce(orch, "iris:1", "--verify", "--json")
    assert res.code == 0, res.describe()
    assert res.json["sources"] == ["flow.py", "helpers.py"]
    assert {s["step"]: s["rebuilt"] for s in res.json["steps"]} == {
        k: v for k, v in outputs(run).items() if k in LINEAGE
    }


def log_module_name(project: Project) -> None:
    """Make step `features` log through `logging.getLogger(__name__)`."""
    project.edit(
        "flow.py",
        "    out = helpers.scale(df)\n",
        '    out = helpers.scale(df)\n    logging.getLogger(__name__).info("scaled")\n',
    )
    project.edit("flow.py", "import os\n", "import logging\nimport os\n")


def test_step_reading_its_module_name_is_reproduced_identically(
    project: Project, orch: Orch
) -> None:
    write_project(project)
    log_module_name(project)
    run = orch.run("flow.py:iris")
    again = orch.run("flow.py:iris")
    keys = {s["name"]: (s["state"], s["cache_key"]) for s in again["steps"]}
    for s in run["steps"]:
        if s["name"] in LINEAGE:  # the key is stable across runs
            assert keys[s["name"]] == ("cached", s["cache_key"]), again

    res = reproduce(orch, "iris:1", "--verify", "--json")
    assert res.code == 0, res.describe()
    assert res.json["verdict"] == "identical", res.json
    assert [s["original"] for s in res.json["steps"]] == [outputs(run)[s] for s in LINEAGE]


def test_step_reading_its_module_name_keeps_its_code_when_rebuilt(
    project: Project, orch: Orch
) -> None:
    """The rebuild loads `flow.py` from another folder: its `__name__` is not its code."""
    write_project(project)
    log_module_name(project)
    orch.run("flow.py:iris", "--param", "jitter=true")

    res = reproduce(orch, "iris:1", "--verify", "--json")
    assert res.code == 1, res.describe()
    first = res.json["first_difference"]
    assert (first["step"], first["reason"]) == ("features", "nondeterminism"), first
