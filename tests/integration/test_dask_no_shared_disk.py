"""A Dask cluster whose workers share no disk with the runner, driven through the CLI.

The scheduler and two workers run in Docker containers of the test image
(`scripts/test-image.sh`, the project with its dask, postgres and s3 extras) started by
`scripts/dask_cluster.py`, on the host's network: they reach the real PostgreSQL
(`scripts/start-postgres.sh`) and the real S3-compatible server (moto's, started by
`scripts/start-s3.sh`) on loopback, and mount nothing but a read-only code folder that
holds the tests' pipeline files (not ORCH_HOME, which the workers cannot see; a test
checks it). Artifacts go to `s3://` and metadata to PostgreSQL; the runner is the `orch`
CLI in a subprocess. The cluster is started once for this module (a few seconds);
nothing is mocked, and no test asserts how fast anything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "scripts"))

from dask_cluster import DockerDaskCluster  # noqa: E402
from orchtest import Orch, Project, states, step_of, wait_for  # noqa: E402

CLASSIFICATION_STEPS = ["ingest", "validate", "features", "train", "evaluate", "deploy"]
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "orch-test",
    "AWS_SECRET_ACCESS_KEY": "orch-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# -- fixtures ---------------------------------------------------------------------------


def built_test_image() -> str:
    """The test image's tag (built by scripts/test-image.sh unless it exists)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test-image.sh")],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, f"test-image.sh exited {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The only folder the cluster's containers mount (read-only): pipeline files."""
    return tmp_path_factory.mktemp("dask-code")


@pytest.fixture(scope="module")
def cluster(code_dir: Path, s3_server: str) -> Iterator[DockerDaskCluster]:
    # credentials of the server's one account: every test's bucket (`s3_bucket`) is seen
    env = CREDENTIALS | {"ORCH_S3_ENDPOINT": s3_server}
    started = DockerDaskCluster.start(built_test_image(), workers=2, code=[code_dir], env=env)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def project(code_dir: Path, request: pytest.FixtureRequest) -> Project:
    return Project(code_dir / request.node.name)


@pytest.fixture
def orch(
    tmp_path: Path,
    project: Project,
    pg_url: str,
    s3_bucket: Any,
    cluster: DockerDaskCluster,
) -> Orch:
    runner = Orch(tmp_path / "orch-home", project.root)
    runner.env.update(s3_bucket.env)
    runner.env["ORCH_DB_URL"] = pg_url
    runner.env["ORCH_ARTIFACTS"] = s3_bucket.url
    runner.env["ORCH_DASK_ADDRESS"] = cluster.address
    runner.home.mkdir(parents=True)
    return runner


def local_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def artifact_value(orch: Orch, doc: dict[str, Any], name: str) -> Any:
    """The output value of step `name` of a run, as `orch artifact --to` reads it from S3."""
    target = orch.home / f"{doc['run_id']}-{name}.json"
    res = orch("artifact", doc["run_id"], name, "--to", str(target))
    assert res.code == 0, res.describe()
    return json.loads(target.read_text())


# -- pipelines --------------------------------------------------------------------------

MAPPED = """
import os
import sys

from orchestrator import pipeline, step

HOME = {home!r}


@step
def numbers(n: int = 4) -> list[int]:
    return list(range(n))


@step
def where(x: int) -> dict:
    from distributed import get_worker

    try:
        address = get_worker().address
    except ValueError:  # not on a Dask worker
        address = "here"
    return {{
        "x": x * 10,
        "address": address,
        "python": sys.prefix,  # the image's virtualenv is /opt/orch
        "sees_home": os.path.exists(HOME),
    }}


@step
def collect(rows: list[dict]) -> list[int]:
    return [r["x"] for r in rows]


@pipeline
def mapped(n: int = 4):
    return collect(where.map(x=numbers(n)))
"""

SLOW = """
import time

from orchestrator import current, pipeline, step


@step(retries=1, retry_backoff=0)
def slow(n: int = 3) -> int:
    if current().attempt == 1:
        time.sleep(8)  # long enough to be killed in the middle
    return n * 2


@step
def after(x: int) -> int:
    return x + 1


@pipeline
def killed(n: int = 3):
    after(slow(n))
"""


# -- tests ------------------------------------------------------------------------------


def test_classification_on_workers_without_the_runners_disk_then_local_rerun_is_cached(
    orch: Orch, cluster: DockerDaskCluster, s3_bucket: Any
) -> None:
    with Client(cluster.address, timeout=30) as client:
        # the workers see the code folder but not ORCH_HOME, which exists here
        assert set(client.run(os.path.exists, str(orch.home)).values()) == {False}
        assert set(client.run(os.path.isdir, str(orch.cwd.parent)).values()) == {True}

    first = orch.run("classification", "--executor", "dask")
    assert first["status"] == "succeeded"
    assert states(first) == dict.fromkeys(CLASSIFICATION_STEPS, "succeeded")
    assert all(s["attempts"] == 1 and s["outputs"] for s in first["steps"])
    assert orch.runs()[0]["executor"] == "dask"
    # the artifacts are objects on the S3 server, none is a file under ORCH_HOME
    objects = s3_bucket.keys()
    hashes = {o["hash"] for s in first["steps"] for o in s["outputs"]}
    assert hashes <= {Path(k).name.split(".")[0] for k in objects}, objects
    assert local_files(orch.home / "artifacts") == []

    # deploy ran on a worker and registered the model in PostgreSQL
    models = orch("models", "--json")
    assert models.code == 0, models.describe()
    [version] = [m for m in models.json["models"] if m["name"] == "iris-classifier"]
    assert version["run_id"] == first["run_id"]
    assert version["artifact_hash"] == step_of(first, "train")["outputs"][0]["hash"]

    # here, with the thread executor and the same PostgreSQL and bucket: all cache hits
    again = orch.run("classification", "--executor", "thread")
    assert states(again) == dict.fromkeys(CLASSIFICATION_STEPS, "cached")
    for name in CLASSIFICATION_STEPS:
        assert step_of(again, name)["outputs"] == step_of(first, name)["outputs"]
        assert step_of(again, name)["cache_key"] == step_of(first, name)["cache_key"]
    assert orch.runs()[0]["executor"] == "thread"


def test_mapped_step_on_the_cluster_then_cached_locally(orch: Orch, project: Project) -> None:
    project.write("mapped.py", MAPPED.format(home=str(orch.home)))
    run = orch.run("mapped.py:mapped", "--executor", "dask")
    assert [states(run)[f"where[{i}]"] for i in range(4)] == ["succeeded"] * 4
    assert artifact_value(orch, run, "collect") == [0, 10, 20, 30]
    rows = artifact_value(orch, run, "where")
    assert [r["x"] for r in rows] == [0, 10, 20, 30]
    # every child ran on a Dask worker in the image, which cannot see ORCH_HOME
    assert all(r["address"].startswith("tcp://127.0.0.1:") for r in rows), rows
    assert {(r["python"], r["sees_home"]) for r in rows} == {("/opt/orch", False)}

    # here, one more child: the four the cluster made are hits, the new one runs here
    again = orch.run("mapped.py:mapped", "--param", "n=5", "--executor", "thread")
    assert [states(again)[f"where[{i}]"] for i in range(4)] == ["cached"] * 4
    assert states(again)["where[4]"] == "succeeded"
    assert artifact_value(orch, again, "where")[4] == {
        "x": 40,
        "address": "here",
        "python": sys.prefix,
        "sees_home": True,
    }
    assert artifact_value(orch, again, "collect") == [0, 10, 20, 30, 40]


def test_worker_container_killed_mid_step_ends_in_a_retry(
    orch: Orch, project: Project, cluster: DockerDaskCluster
) -> None:
    project.write("killed.py", SLOW)
    proc = orch.popen(
        "run", "killed.py:killed", "--json", "--executor", "dask", log=orch.home / "cli"
    )
    killed = None
    try:
        with Client(cluster.address, timeout=30) as client:

            def running_on() -> str | None:
                assert proc.poll() is None, "the run ended before the step started"
                for address, keys in client.processing().items():
                    if any(str(k).startswith("slow-") for k in keys):
                        return str(address)
                return None

            address = wait_for(running_on, "the step to start on a worker", timeout=90)
            names = {a: n for n, a in cluster.workers().items()}
            killed = int(names[address].removeprefix("w"))
            time.sleep(1)  # well inside the step's 8 s
            cluster.kill_worker(killed)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if killed is not None:  # the next module's tests get both workers again
            cluster.restart_worker(killed)
    out = (orch.home / "cli.out").read_text()
    err = (orch.home / "cli.err").read_text()
    assert code == 0, f"exit {code}\n{out}\n{err}"
    assert "Traceback" not in err, err
    run = json.loads(out)
    assert states(run) == {"slow": "succeeded", "after": "succeeded"}
    assert step_of(run, "slow")["attempts"] == 2
    assert artifact_value(orch, run, "after") == 7
    history = step_of(orch.show(run["run_id"]), "slow")["attempt_history"]
    assert [(a["attempt"], a["state"]) for a in history] == [(1, "failed"), (2, "succeeded")]
    lost = f"step 'slow': its Dask worker {address} was lost during the attempt"
    assert history[0]["error"] == lost


def test_stores_the_workers_cannot_see_are_one_clear_error(
    orch: Orch, cluster: DockerDaskCluster
) -> None:
    workers = ", ".join(sorted(cluster.workers().values()))
    # artifacts in a folder under ORCH_HOME: the containers do not mount it
    folder = {k: v for k, v in orch.env.items() if k != "ORCH_ARTIFACTS"}
    runner = Orch(orch.home, orch.cwd)
    runner.env = folder
    res = runner("run", "classification", "--json", "--executor", "dask", timeout=120)
    assert res.code == 2, res.describe()
    assert res.out == "" and "Traceback" not in res.err, res.describe()
    assert res.err.strip().splitlines()[-1] == (
        f"error: the Dask workers {workers} cannot see the artifact store "
        f"{orch.home / 'artifacts'}: workers that share no disk with this machine need "
        "ORCH_ARTIFACTS=s3://bucket/prefix"
    )
    # artifacts in S3 but the metadata in a SQLite file under ORCH_HOME
    runner.env = {k: v for k, v in orch.env.items() if k != "ORCH_DB_URL"}
    res = runner("run", "classification", "--json", "--executor", "dask", timeout=120)
    assert res.code == 2, res.describe()
    assert res.err.strip().splitlines()[-1] == (
        f"error: the Dask workers {workers} cannot see the metadata store "
        f"{orch.home / 'orchestrator.db'}: workers that share no disk with this machine need "
        "ORCH_DB_URL=postgresql+psycopg://..."
    )
    # nothing ran: no run was recorded in either store
    assert orch.runs() == []


def test_image_build_with_an_unknown_extra_is_a_clear_error() -> None:
    args = ["image", "build", "--tag", "x:1", "--extra", "dask", "--extra", "dusk"]
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: --extra dusk: orchestrator has no such extra (choose from ")
    assert "dask" in lines[0] and "postgres" in lines[0] and "s3" in lines[0]
