"""The Docker executor on a real Docker engine, through the CLI as a user types it.

The image is built from this checkout by `scripts/test-image.sh` (a Debian base made
with debootstrap, the project's wheels installed offline), once per source state.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from orchtest import Orch, Project, states, step_of  # noqa: E402


@pytest.fixture(scope="session")
def docker_image() -> str:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test-image.sh")],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


@pytest.fixture
def orch(tmp_path: Path, project: Project, docker_image: str) -> Orch:
    o = Orch(tmp_path / "home", project.root)
    o.env["ORCH_IMAGE"] = docker_image
    return o


SMALL = """
import os
import helpers
from orchestrator import current, pipeline, step

@step(kind="ingest")
def load(n: int = 4) -> list[int]:
    print("loading", n, "as uid", os.getuid())
    return list(range(n))

@step(kind="feature")
def scale(xs: list[int], k: int = 3) -> list[int]:
    current().log.info("scaling", k=k)
    return [helpers.times(x, k) for x in xs]

@step(kind="evaluate")
def total(xs: list[int]) -> int:
    return sum(xs)

@pipeline
def small(n: int = 4, k: int = 3):
    total(scale(load(n=n), k=k))
"""

HELPERS = """
def times(x, k):
    return x * k
"""


@pytest.fixture
def small(project: Project) -> Project:
    project.write("helpers.py", HELPERS)
    project.write("flow.py", SMALL)
    return project


def test_user_pipeline_runs_in_containers_as_nobody_and_logs_come_back(
    orch: Orch, small: Project
) -> None:
    doc = orch.run("flow.py:small", "--executor", "docker")
    assert states(doc) == {"load": "succeeded", "scale": "succeeded", "total": "succeeded"}
    show = orch.show(doc["run_id"])
    assert "loading 4 as uid 65534" in step_of(show, "load")["log"]
    assert "scaling k=3" in step_of(show, "scale")["log"]
    assert show["executor"] == "docker"
    again = orch.run("flow.py:small")  # the thread executor reuses the containers' results
    assert set(states(again).values()) == {"cached"}


def test_local_results_are_cache_hits_in_docker(orch: Orch, small: Project) -> None:
    first = orch.run("flow.py:small", "--param", "k=5")
    assert set(states(first).values()) == {"succeeded"}
    doc = orch.run("flow.py:small", "--param", "k=5", "--executor", "docker")
    assert set(states(doc).values()) == {"cached"}


def test_builtin_classification_in_docker_then_cached_locally(orch: Orch, project: Project) -> None:
    doc = orch.run("classification", "--executor", "docker")
    assert doc["status"] == "succeeded"
    assert {s["kind"] for s in doc["steps"]} == {
        "ingest",
        "validate",
        "feature",
        "train",
        "evaluate",
        "deploy",
    }
    assert set(states(doc).values()) == {"succeeded"}
    again = orch.run("classification")
    assert set(states(again).values()) == {"cached"}
    models = orch("models", "--json").json["models"]
    assert [m["stage"] for m in models] == ["production"]


FAILURES = """
import os, sys, time
from orchestrator import pipeline, step

@step(hints={{"image": "orch-no-such-image:1"}})
def missing_image() -> int:
    return 1

@step(hints={{"memory": "64m"}})
def hog() -> int:
    blob = bytearray(400 * 1024 * 1024)
    return len(blob)

@step
def dies() -> int:
    sys.__stderr__.write("about to die: disk on fire\\n")
    sys.__stderr__.flush()
    os._exit(3)

@step(timeout=3)
def sleeper() -> int:
    time.sleep(120)
    return 1

@step
def after(x: int) -> int:
    return x

@step(hints={{"env": {{"GREETING": "hello"}}, "cpus": 0.5}})
def env_and_cpus() -> str:
    return os.environ["GREETING"]

@step
def no_network() -> str:
    import socket
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
        return "connected"
    except OSError as exc:
        return f"failed: {{exc}}"

@step(hints={{"network": True}})
def with_network() -> str:
    import socket
    with socket.create_connection(("127.0.0.1", {port}), timeout=5) as s:
        return s.recv(16).decode()

@step(hints={{"keep_failed": True}})
def kept() -> int:
    raise RuntimeError("keep me")

@pipeline
def image_missing():
    missing_image()

@pipeline
def oom():
    hog()

@pipeline
def crash():
    dies()

@pipeline
def slow():
    after(sleeper())

@pipeline
def env():
    env_and_cpus()

@pipeline
def network():
    no_network()
    with_network()

@pipeline
def keep():
    kept()
"""


@pytest.fixture
def loopback_server():
    """A TCP server on the host's loopback that greets each client with b'hello-host'."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.sendall(b"hello-host")
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    srv.close()


@pytest.fixture
def failing(project: Project, loopback_server: int) -> Project:
    project.write("fail.py", FAILURES.format(port=loopback_server))
    return project


def _error(doc: dict, step: str) -> str:
    s = step_of(doc, step)
    assert s["state"] == "failed", s
    return s["error"]


def test_image_not_found_names_step_and_image(orch: Orch, failing: Project) -> None:
    doc = orch.run("fail.py:image_missing", "--executor", "docker", code=1)
    err = _error(doc, "missing_image")
    assert "step 'missing_image'" in err
    assert "Docker image 'orch-no-such-image:1' not found" in err


def test_engine_unreachable_names_step_and_engine(orch: Orch, failing: Project) -> None:
    orch.env["DOCKER_HOST"] = "unix:///tmp/no-docker-here.sock"
    doc = orch.run("fail.py:crash", "--executor", "docker", code=1)
    err = _error(doc, "dies")
    assert "step 'dies': cannot reach the Docker engine at unix:///tmp/no-docker-here.sock" in err


def test_oom_killed_container_is_reported(orch: Orch, failing: Project) -> None:
    doc = orch.run("fail.py:oom", "--executor", "docker", code=1)
    assert "step 'hog': container was OOM-killed (memory limit 64m)" in _error(doc, "hog")


def test_nonzero_exit_gives_code_and_last_lines(orch: Orch, failing: Project) -> None:
    doc = orch.run("fail.py:crash", "--executor", "docker", code=1)
    err = _error(doc, "dies")
    assert "container exited with code 3" in err
    assert "about to die: disk on fire" in err


def _containers(label: str, key: str = "orchestrator.model.step") -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={key}={label}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def test_timeout_kills_the_container(orch: Orch, failing: Project) -> None:
    doc = orch.run("fail.py:slow", "--executor", "docker", code=1)
    assert "timed out after 3s" in _error(doc, "sleeper")
    assert step_of(doc, "after")["state"] == "skipped"
    # the container was killed and removed, not left sleeping (removed at once: the
    # `orch run` process has exited, so no thread of it could still be cleaning up)
    assert _containers(doc["run_id"], key="orchestrator.engine") == []


def test_env_cpus_and_network_policy(orch: Orch, failing: Project) -> None:
    doc = orch.run("fail.py:env", "--executor", "docker")
    out = step_of(doc, "env_and_cpus")["outputs"][0]
    assert out["type"] == "builtins:str"
    doc = orch.run("fail.py:network", "--executor", "docker")
    show = orch.show(doc["run_id"])
    assert set(states(show).values()) == {"succeeded"}
    # read the two string outputs back from the store
    import json

    values = {}
    for name in ("no_network", "with_network"):
        values[name] = json.loads(orch.stored_text(step_of(show, name)["outputs"][0]))
    assert values["no_network"].startswith("failed:")  # no route to the host's loopback
    assert values["with_network"] == "hello-host"


def test_failed_container_can_be_kept(orch: Orch, failing: Project) -> None:
    doc = orch.run("fail.py:keep", "--executor", "docker", code=1)
    err = _error(doc, "kept")
    assert "RuntimeError: keep me" in err
    assert "kept for inspection" in err
    kept = _containers("kept")
    try:
        assert kept
    finally:
        if kept:
            subprocess.run(["docker", "rm", "-f", *kept], capture_output=True)


def test_no_container_left_behind_after_success(orch: Orch, small: Project) -> None:
    doc = orch.run("flow.py:small", "--param", "n=2", "--executor", "docker")
    assert set(states(doc).values()) == {"succeeded"}
    assert _containers(doc["run_id"], "orchestrator.engine") == []


def test_image_build_installs_the_project_and_the_users_code(
    docker_image: str, tmp_path: Path
) -> None:
    code = tmp_path / "myproject"
    code.mkdir()
    (code / "mylib.py").write_text("ANSWER = 42\n")
    (code / ".orchestrator").mkdir()  # local state is not copied into the image
    (code / ".orchestrator" / "big.db").write_text("x")
    tag = f"orch-user-image-test:{tmp_path.name.lower()[-20:]}"
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "image", "build", "--tag", tag, "--code", str(code)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"built {tag}" in proc.stdout
        check = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "--user",
                "65534:65534",
                tag,
                "python3",
                "-c",
                "import mylib, orchestrator, os; print(mylib.ANSWER, orchestrator.__version__, "
                "os.path.exists('/app/.orchestrator'))",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0, check.stderr
        assert check.stdout.split() == ["42", "0.1.0", "False"]
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def test_image_build_without_a_base_image_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "image",
            "build",
            "--tag",
            "x:1",
            "--base",
            "orch-no-such-base:0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "base image 'orch-no-such-base:0' not found" in proc.stderr


MAPPED = """
import os
from orchestrator import pipeline, step

@step(kind="ingest")
def load(n: int = 3) -> list[int]:
    return list(range(n))

@step
def square(x: int) -> list[int]:
    return [x * x, os.getuid()]

@step
def total(rows: list[list[int]]) -> int:
    return sum(r[0] for r in rows)

@pipeline
def mapped(n: int = 3):
    total(square.map(x=load(n=n)))
"""


def test_mapped_children_run_in_containers(orch: Orch, project: Project) -> None:
    project.write("mapped.py", MAPPED)
    doc = orch.run("mapped.py:mapped", "--executor", "docker")
    assert [states(doc)[f"square[{i}]"] for i in range(3)] == ["succeeded"] * 3
    shown = orch("artifact", doc["run_id"], "square")
    assert "65534" in shown.out, shown.describe()  # each child ran as nobody in a container
    again = orch.run("mapped.py:mapped")
    assert states(again)["square"] == "cached" and states(again)["total"] == "cached"


TRACKED = """
from orchestrator import current, pipeline, step

@step(kind="train")
def fit(lr: float = 0.5) -> float:
    for epoch in range(3):
        current().log_metric("loss", lr / (epoch + 1), step=epoch)
    current().log_params(where="container")
    current().log_artifact({"lr": lr}, "config")
    return lr

@step(kind="evaluate")
def score(lr: float) -> dict[str, float]:
    return {"r2": 1 - lr}

@pipeline
def tracked(lr: float = 0.5):
    score(fit(lr=lr))
"""


def test_steps_in_containers_log_metrics_params_and_artifacts(orch: Orch, project: Project) -> None:
    project.write("tracked.py", TRACKED)
    doc = orch.run("tracked.py:tracked", "--executor", "docker")
    assert states(doc) == {"fit": "succeeded", "score": "succeeded"}
    assert doc["metrics"] == {"loss": pytest.approx(0.5 / 3), "r2": 0.5}
    res = orch("runs", "--columns", "params,metrics", "--json")
    assert res.code == 0, res.describe()
    (row,) = res.json["runs"]
    assert row["params"] == {"lr": 0.5, "where": "container"}
    import orchestrator

    run = orchestrator.get_run(doc["run_id"], home=orch.home)
    assert [p["value"] for p in run.series["loss"]] == pytest.approx([0.5, 0.25, 0.5 / 3])
    assert run.artifact("config") == {"lr": 0.5}  # moved out of the container's scratch


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.parametrize("pool", ["1", "0"], ids=["pooled", "per-step"])
def test_small_values_round_trip_inline_through_containers(
    orch: Orch, small: Project, tmp_path: Path, pool: str
) -> None:
    orch.env["ORCH_DOCKER_POOL"] = pool
    doc = orch.run("flow.py:small", "--executor", "docker")
    assert states(doc) == {"load": "succeeded", "scale": "succeeded", "total": "succeeded"}
    shown = orch.show(doc["run_id"])
    assert "as uid 65534" in step_of(shown, "load")["log"]  # it ran in a container
    for name in ("load", "scale", "total"):
        [out] = step_of(doc, name)["outputs"]
        assert "inline" in out, name  # came back in the result, no file to adopt
    assert _files(orch.artifacts) == []  # and the consumers read their inputs inline
    assert json.loads(step_of(doc, "total")["outputs"][0]["inline"]) == 18  # (0+1+2+3) * 3

    threaded = Orch(tmp_path / "thread-home", small.root).run("flow.py:small")
    for name in ("load", "scale", "total"):
        assert step_of(doc, name)["cache_key"] == step_of(threaded, name)["cache_key"]
        assert step_of(doc, name)["outputs"] == step_of(threaded, name)["outputs"]
    assert set(states(orch.run("flow.py:small")).values()) == {"cached"}
