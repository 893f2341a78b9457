"""A step in a container uses the numerical kernels the host names, so it gives the
host's bytes.

With `OPENBLAS_CORETYPE` set on the host, OpenBLAS there uses that kernel; a container
that did not get the variable would detect the CPU itself and might pick another (on a
machine with AVX-512, SkylakeX instead of the Haswell the host names), and a fitted model
would then be other bytes than the thread executor makes under the same cache key.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from orchtest import Orch, Project, step_of

from tests.integration.test_docker import docker_image, project  # noqa: F401

# Katmai-class kernels: a choice every x86-64 CPU runs and none detects on its own
CORETYPE = "Prescott"

FLOW = """
import os

import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_info

from orchestrator import pipeline, step


@step(kind="ingest")
def kernels(n: int = 1) -> dict:
    import numpy  # noqa: F401 - loads its OpenBLAS

    arch = sorted({i["architecture"] for i in threadpool_info() if i["internal_api"] == "openblas"})
    return {"env": os.environ.get("OPENBLAS_CORETYPE"), "arch": arch}


@step(kind="train")
def fit(seen: dict) -> BaseEstimator:
    df = load_iris(as_frame=True).frame
    X, y = df.drop(columns="target") * 10.0, df["target"]
    return LogisticRegression(max_iter=500).fit(X, y)


@pipeline
def numerics(n: int = 1):
    fit(kernels(n=n))
"""


def _host_arch() -> list[str]:
    code = (
        "import json, numpy; from threadpoolctl import threadpool_info; "
        "print(json.dumps(sorted({i['architecture'] for i in threadpool_info() "
        "if i['internal_api'] == 'openblas'})))"
    )
    env = {"OPENBLAS_CORETYPE": CORETYPE, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def _orch(tmp_path: Path, name: str, proj: Project, image: str) -> Orch:
    o = Orch(tmp_path / name, proj.root)
    o.env |= {"ORCH_IMAGE": image, "OPENBLAS_CORETYPE": CORETYPE}
    return o


def _fit_hash(doc: dict) -> str:
    return step_of(doc, "fit")["outputs"][0]["hash"]


@pytest.mark.parametrize("pool", ["1", "0"], ids=["pooled", "per-step"])
def test_a_container_uses_the_kernels_the_host_names_and_fits_the_same_bytes(
    tmp_path: Path,
    project: Project,  # noqa: F811
    docker_image: str,  # noqa: F811
    pool: str,
) -> None:
    project.write("flow.py", FLOW)
    host = _orch(tmp_path, "host", project, docker_image)
    docker = _orch(tmp_path, "docker", project, docker_image)
    docker.env["ORCH_DOCKER_POOL"] = pool

    local = host.run("flow.py:numerics")
    boxed = docker.run("flow.py:numerics", "--executor", "docker")

    assert host.show(local["run_id"])["executor"] == "thread"
    assert docker.show(boxed["run_id"])["executor"] == "docker"
    seen = json.loads(docker.stored_text(step_of(boxed, "kernels")["outputs"][0]))
    assert seen == {"env": CORETYPE, "arch": _host_arch()}
    assert _fit_hash(boxed) == _fit_hash(local)
