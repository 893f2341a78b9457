"""The Docker executor's warm container pool on a real Docker engine.

Steps run through the engine with a real SQLite store and artifact folder; each step
reports the container it ran in (its hostname, the container's id), so the tests can tell
a reused container from a new one.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.engine.loop import Engine
from orchestrator.engine.report import RunResult
from orchestrator.execution.docker import DockerExecutor
from orchestrator.execution.local import EXECUTORS
from orchestrator.execution.worker import load_module_from_path
from orchestrator.store.metadata import MetadataStore
from tests.integration.test_docker import docker_image  # noqa: F401 - the fixture

FLOW = textwrap.dedent(
    """
    import os, socket, subprocess
    from pathlib import Path
    from orchestrator import current, pipeline, step

    def _seen() -> dict:
        return {
            "host": socket.gethostname(),
            "tmp": os.path.exists("/tmp/left-by-first"),
            "shm": os.path.exists("/dev/shm/left-by-first"),
            "home": os.path.exists(os.path.join(os.environ["HOME"], "left-by-first")),
            "cwd": os.path.exists("left-by-first"),
            "env": os.environ.get("LEFT_BY_FIRST"),
            "uid": os.getuid(),
        }

    @step
    def first(n: int = 1) -> dict:
        seen = _seen()
        for place in ("/tmp", "/dev/shm", os.environ["HOME"], "."):
            Path(place, "left-by-first").write_text("secret")
        os.environ["LEFT_BY_FIRST"] = "secret"
        return seen

    @step
    def second(before: dict) -> dict:
        return _seen()

    @pipeline
    def isolation(n: int = 1):
        second(first(n=n))

    @step(hints={"memory": "96m"})
    def small_limited(n: int = 1) -> str:
        return socket.gethostname()

    @step(hints={"memory": "96m"}, retries=1)
    def hog(before: str) -> str:
        if current().attempt == 1:
            blob = bytearray(400 * 1024 * 1024)
            return str(len(blob))
        return socket.gethostname()

    @pipeline
    def oom(n: int = 1):
        hog(small_limited(n=n))

    @step
    def leaves_a_process(n: int = 1) -> str:
        subprocess.Popen(["sleep", "300"], start_new_session=True)
        return socket.gethostname()

    @step
    def after_it(before: str) -> str:
        return socket.gethostname()

    @pipeline
    def straggler(n: int = 1):
        after_it(leaves_a_process(n=n))

    @step
    def count(n: int = 3) -> list[int]:
        return list(range(n))

    @step
    def scaled(xs: list[int], k: float = 0.5) -> dict[str, float]:
        return {str(x): x * k for x in xs}

    @pipeline
    def plain(n: int = 3):
        scaled(count(n=n))

    @step(hints={"pool": False})
    def fresh_one(n: int = 1) -> str:
        return socket.gethostname()

    @step(hints={"pool": False})
    def fresh_two(before: str) -> str:
        return socket.gethostname()

    @pipeline
    def fresh(n: int = 1):
        fresh_two(fresh_one(n=n))

    @step(hints={"executor": "thread"})
    def on_host(n: int = 1) -> list[str]:
        import time
        run = f"label=orchestrator.engine={current().run_id}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a container of this run, started meanwhile
            cmd = ["docker", "ps", "-q", "--no-trunc", "--filter", run]
            found = subprocess.run(cmd, capture_output=True, text=True).stdout.split()
            if found:
                return found
            time.sleep(0.1)
        return []

    @step
    def in_container(seen: list[str]) -> str:
        return socket.gethostname()

    @pipeline
    def warmed(n: int = 1):
        in_container(on_host(n=n))
    """
)


class Bench:
    """An engine over a fresh store whose Docker executor stays inspectable."""

    def __init__(self, root: Path, image: str) -> None:
        root.mkdir(parents=True)
        self.store = MetadataStore(f"sqlite:///{root}/db.sqlite")
        self.artifacts = ArtifactStore(root / "artifacts")
        self.docker: DockerExecutor | None = None

        def make(name: str) -> Any:
            if name != "docker":
                return EXECUTORS[name](self.artifacts)
            self.docker = DockerExecutor(self.artifacts, image=image, db_url=self.store.url)
            return self.docker

        self.engine = Engine(self.store, self.artifacts, make)

    def run(self, flow: Any, name: str, executor: str = "docker") -> RunResult:
        return self.engine.run(getattr(flow, name).build(), target="test", executor=executor)

    def value(self, result: RunResult, step: str) -> Any:
        report = result.step(step)
        assert report is not None and report.state == "succeeded", report
        return self.artifacts.get(report.outputs[0])

    def close(self) -> None:
        self.engine.close()
        self.store.close()


@pytest.fixture
def flow(tmp_path: Path) -> Any:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "poolflow.py").write_text(FLOW)
    return load_module_from_path(folder / "poolflow.py")


@pytest.fixture
def bench(tmp_path: Path, docker_image: str) -> Iterator[Bench]:  # noqa: F811
    b = Bench(tmp_path / "b", docker_image)
    yield b
    b.close()


def _containers(label: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def test_two_steps_in_one_container_see_nothing_of_each_other(bench: Bench, flow: Any) -> None:
    result = bench.run(flow, "isolation")
    first, second = bench.value(result, "first"), bench.value(result, "second")
    assert second["host"] == first["host"]  # the same warm container
    assert bench.docker is not None and bench.docker.pool.started == 1
    assert second == {
        "host": first["host"],
        "tmp": False,
        "shm": False,
        "home": False,
        "cwd": False,
        "env": None,
        "uid": 65534,
    }


def test_a_step_that_ooms_discards_its_container(bench: Bench, flow: Any) -> None:
    result = bench.run(flow, "oom")
    before = bench.value(result, "small_limited")
    report = result.step("hog")
    assert report is not None and report.attempts == 2
    retried_in = bench.value(result, "hog")
    assert retried_in != before  # the container the OOM happened in was not reused
    assert bench.docker is not None and bench.docker.pool.started == 2
    assert before[:12] not in " ".join(_containers("orchestrator.pool=1"))


def test_a_step_leaving_a_process_behind_discards_its_container(bench: Bench, flow: Any) -> None:
    result = bench.run(flow, "straggler")
    assert bench.value(result, "after_it") != bench.value(result, "leaves_a_process")
    assert bench.docker is not None and bench.docker.pool.started == 2


def test_pooled_cache_keys_equal_a_thread_runs(
    tmp_path: Path,
    docker_image: str,  # noqa: F811
    flow: Any,
) -> None:
    keys = {}
    for executor in ("thread", "docker"):
        b = Bench(tmp_path / executor, docker_image)
        try:
            result = b.run(flow, "plain", executor)
            assert result.status == "succeeded", [(s.name, s.error) for s in result.steps]
            keys[executor] = {s.name: s.cache_key for s in result.steps}
        finally:
            b.close()
    assert keys["docker"] == keys["thread"]
    assert set(keys["docker"]) == {"count", "scaled"} and all(keys["docker"].values())


def test_no_container_is_left_after_the_run(bench: Bench, flow: Any) -> None:
    result = bench.run(flow, "isolation")
    assert result.status == "succeeded"
    assert len(_containers(f"orchestrator.engine={result.run_id}")) == 1  # warm, idle
    bench.engine.close()
    assert _containers(f"orchestrator.engine={result.run_id}") == []


def test_per_step_containers_remain_an_option(bench: Bench, flow: Any) -> None:
    result = bench.run(flow, "fresh")
    assert bench.value(result, "fresh_one") != bench.value(result, "fresh_two")
    assert bench.docker is not None and bench.docker.pool.started == 0


def test_a_container_is_started_while_the_steps_before_the_first_container_step_run(
    bench: Bench, flow: Any
) -> None:
    result = bench.run(flow, "warmed")
    seen = bench.value(result, "on_host")  # running on the host, before any container step
    assert len(seen) == 1, seen
    assert seen[0].startswith(bench.value(result, "in_container"))  # and the step took it
    assert bench.docker is not None and bench.docker.pool.started == 1


EDITED = textwrap.dedent(
    """
    import socket
    from orchestrator import pipeline, step

    @step
    def version(n: int = 1) -> str:
        return "v1:" + socket.gethostname()

    @pipeline
    def edited(n: int = 1):
        version(n=n)
    """
)


def _load_afresh(path: Path) -> Any:
    """The module at `path` as it is now (no bytecode left beside it: the container
    compiles the file, as it does for a file the host never wrote bytecode for)."""
    import shutil
    import sys

    shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)
    for name in [n for n, m in sys.modules.items() if getattr(m, "__file__", None) == str(path)]:
        del sys.modules[name]
    module = load_module_from_path(path)
    shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)
    return module


def test_a_step_file_edited_between_runs_runs_as_edited_in_the_same_container(
    bench: Bench, tmp_path: Path
) -> None:
    path = tmp_path / "code" / "edited_flow.py"
    path.parent.mkdir()
    path.write_text(EDITED)
    first = bench.value(bench.run(_load_afresh(path), "edited"), "version")
    path.write_text(EDITED.replace('"v1:"', '"v2:"'))  # the same size
    second = bench.value(bench.run(_load_afresh(path), "edited"), "version")
    assert first.startswith("v1:") and second == "v2:" + first[3:]  # one warm container
    assert bench.docker is not None and bench.docker.pool.started == 1


ENDINGS = textwrap.dedent(
    """
    import os, socket
    from orchestrator import pipeline, step

    @step
    def closes_descriptors(n: int = 1) -> str:
        os.closerange(3, 4096)  # the agent's pipe too: it waits for the exit instead
        return socket.gethostname()

    @step
    def exits(before: str) -> str:
        os._exit(3)

    @pipeline
    def endings(n: int = 1):
        exits(closes_descriptors(n=n))

    @step
    def after(n: int = 1) -> str:
        return socket.gethostname()

    @pipeline
    def later(n: int = 1):
        after(n=n)
    """
)


def test_a_step_closing_its_descriptors_or_exiting_without_a_result(
    bench: Bench, tmp_path: Path
) -> None:
    path = tmp_path / "code" / "endings_flow.py"
    path.parent.mkdir()
    path.write_text(ENDINGS)
    flow = _load_afresh(path)
    result = bench.run(flow, "endings")
    host = bench.value(result, "closes_descriptors")
    report = result.step("exits")
    assert report is not None and report.state == "failed"
    assert "exited with code 3" in (report.error or ""), report.error
    assert bench.value(bench.run(flow, "later"), "after") != host  # that one was discarded
    assert bench.docker is not None and bench.docker.pool.started == 2


THREADS = textwrap.dedent(
    """
    import os
    from orchestrator import pipeline, step

    NAMES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

    @step(hints={"cpus": 1})
    def one_cpu(n: int = 1) -> list:
        return [os.environ.get(v) for v in NAMES]

    @step(hints={"cpus": 1, "env": {"OMP_NUM_THREADS": "2"}})
    def asks_for_two(n: int = 1) -> list:
        return [os.environ.get(v) for v in NAMES]

    @step
    def unlimited(n: int = 1) -> list:
        return [os.environ.get(v) for v in NAMES]

    @step(hints={"cpus": 1, "pool": False})
    def one_cpu_fresh(n: int = 1) -> list:
        return [os.environ.get(v) for v in NAMES]

    @pipeline
    def threads(n: int = 1):
        one_cpu(n=n)
        asks_for_two(n=n)
        unlimited(n=n)
        one_cpu_fresh(n=n)
    """
)


def test_a_step_limited_to_one_cpu_gets_one_blas_thread(bench: Bench, tmp_path: Path) -> None:
    path = tmp_path / "code" / "threads_flow.py"
    path.parent.mkdir()
    path.write_text(THREADS)
    result = bench.run(_load_afresh(path), "threads")
    assert bench.value(result, "one_cpu") == ["1", "1", "1"]
    assert bench.value(result, "one_cpu_fresh") == ["1", "1", "1"]
    assert bench.value(result, "asks_for_two") == ["2", "1", "1"]  # the step's env wins
    assert bench.value(result, "unlimited") == [None, None, None]
