"""The Docker executor with its artifacts in object storage (a real moto S3 server).

Containers have no network and no credentials: their file inputs are staged from the
bucket into a read-only folder, their outputs uploaded by the runner. Each test runs the
engine over a fresh bucket with a real Docker engine, pooled and with a container per step.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.artifacts.location import open_artifacts
from orchestrator.engine.loop import Engine
from orchestrator.engine.report import RunResult
from orchestrator.execution.docker import DockerExecutor
from orchestrator.execution.local import EXECUTORS
from orchestrator.execution.worker import StepInvocation, load_module_from_path
from orchestrator.store.metadata import MetadataStore
from tests.integration.test_docker import docker_image  # noqa: F401 - the fixture

pytestmark = pytest.mark.object_store

FLOW = textwrap.dedent(
    """
    import os
    import pandas as pd
    from orchestrator import pipeline, step

    @step(hints={"executor": "thread"})
    def make(n: int = 3000) -> pd.DataFrame:
        return pd.DataFrame({"x": range(n), "y": [i * 0.5 for i in range(n)]})

    @step
    def boxed(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(z=df.x + df.y, uid=os.getuid())

    @step
    def environ(df: pd.DataFrame) -> dict:
        return dict(os.environ)

    @step(hints={"executor": "thread"})
    def total(df: pd.DataFrame) -> float:
        return float(df.z.sum())

    @pipeline
    def mixed(n: int = 3000):
        frame = make(n=n)
        total(boxed(frame))
        environ(frame)
    """
)
N = 3000
EXPECTED = float(sum(i + i * 0.5 for i in range(N)))


class Bench:
    """An engine over SQLite and a bucket, whose Docker executor stays inspectable."""

    def __init__(self, root: Path, url: str, image: str, pooled: bool) -> None:
        root.mkdir(parents=True)
        self.store = MetadataStore(f"sqlite:///{root}/db.sqlite")
        self.artifacts = open_artifacts(url)
        self.docker: DockerExecutor | None = None

        def make(name: str) -> Any:
            if name != "docker":
                return EXECUTORS[name](self.artifacts)
            self.docker = DockerExecutor(self.artifacts, image=image, pool=pooled)
            return self.docker

        self.engine = Engine(self.store, self.artifacts, make)

    def run(self, flow: Any) -> RunResult:
        return self.engine.run(flow.mixed.build(), target="test", executor="docker")

    def close(self) -> None:
        self.engine.close()
        self.store.close()


@pytest.fixture
def flow(tmp_path: Path) -> Any:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "s3flow.py").write_text(FLOW)
    return load_module_from_path(folder / "s3flow.py")


@pytest.fixture(params=["pooled", "per-step"])
def bench(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    s3_bucket: Any,
    docker_image: str,  # noqa: F811
) -> Iterator[Bench]:
    b = Bench(tmp_path / "b", s3_bucket.url, docker_image, request.param == "pooled")
    yield b
    b.close()


def _states(result: RunResult) -> dict[str, str]:
    return {s.name: str(s.state) for s in result.steps}


def test_frames_cross_between_threads_and_containers_through_the_bucket(
    bench: Bench, flow: Any, s3_bucket: Any
) -> None:
    result = bench.run(flow)
    assert result.status == "succeeded", [(s.name, s.error) for s in result.steps]
    boxed = result.step("boxed")
    assert boxed is not None and boxed.outputs[0].data is None  # a file: an object
    key = bench.artifacts.key(boxed.outputs[0])  # type: ignore[attr-defined]
    assert key in s3_bucket.keys()
    made = bench.artifacts.get(boxed.outputs[0])
    assert list(made.columns) == ["x", "y", "z", "uid"] and set(made.uid) == {65534}
    total = result.step("total")
    assert total is not None and bench.artifacts.get(total.outputs[0]) == EXPECTED
    assert bench.docker is not None and bench.docker.staging is not None
    assert not list(bench.docker.staging.root.rglob("*.arrow"))  # nothing left staged

    again = bench.run(flow)
    assert set(_states(again).values()) == {"cached"}, _states(again)


def test_no_credential_reaches_a_container(bench: Bench, flow: Any, s3_bucket: Any) -> None:
    result = bench.run(flow)
    assert result.status == "succeeded", [(s.name, s.error) for s in result.steps]
    report = result.step("environ")
    assert report is not None
    seen = json.dumps(bench.artifacts.get(report.outputs[0]))
    secrets = [s3_bucket.env["AWS_SECRET_ACCESS_KEY"], s3_bucket.env["AWS_ACCESS_KEY_ID"]]
    assert "AWS_" not in seen and not any(s in seen for s in secrets), seen
    assert bench.docker is not None
    if bench.docker.pooled:  # the warm container is still there: what the engine holds
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=orchestrator.engine={result.run_id}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert ids
        inspect = subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=True
        ).stdout
        assert not any(s in inspect for s in secrets) and "AWS_" not in inspect
        assert '"NetworkDisabled": true' in inspect


def test_a_corrupt_input_object_is_never_fed_to_a_container(
    bench: Bench, flow: Any, s3_bucket: Any
) -> None:
    import pandas as pd

    ref = bench.artifacts.put(pd.DataFrame({"x": range(N), "y": [0.5] * N}))
    key = bench.artifacts.key(ref)  # type: ignore[attr-defined]
    body = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read()
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=bytes(b ^ 0x5A for b in body))
    docker = bench.engine.executor("docker")
    assert isinstance(docker, DockerExecutor)
    step = flow.boxed
    inv = StepInvocation("r-corrupt", "mixed", "boxed", step.ref, {"df": ref}, {}, "k", 1, {})
    result = docker.submit(inv, step, None).result(timeout=300)
    assert not result.ok
    assert "step 'boxed'" in result.error and "input 'df'" in result.error, result.error
    assert "corrupt" in result.error and f"s3://{s3_bucket.name}/{key}" in result.error
    assert docker.pool.started == 0  # no container was started for it
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=orchestrator.engine=r-corrupt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert left == []
    assert docker.staging is not None and not list(docker.staging.root.rglob("*.arrow"))
