"""The Dask executor on a real dask.distributed cluster, driven through the `orch` CLI.

Every test runs `python -m orchestrator run ... --executor dask` in a subprocess with its
own ORCH_HOME (see `tests/e2e/orchtest.py`). Without `--dask-address` the CLI starts a
`LocalCluster` (two worker processes with nannies, on loopback); the `--dask-address`
tests start a real `dask scheduler` and `dask worker` as subprocesses on 127.0.0.1.
Nothing is mocked. Subprocess timeouts are generous upper bounds so that a hang fails a
test instead of blocking the suite; no test asserts how fast anything is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from distributed import Client

# The e2e suite's helpers (`Orch`, `Project`, ...) sit in tests/e2e; make them importable
# whatever pytest's import mode and rootdir are.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from orchtest import (  # noqa: E402
    DEMO_HELPERS,
    DEMO_PIPELINE,
    DEMO_STEPS,
    Orch,
    Project,
    states,
    step_of,
    wait_for,
)

from orchestrator.artifacts.store import ArtifactRef, ArtifactStore  # noqa: E402

CLASSIFICATION_STEPS = ["ingest", "validate", "features", "train", "evaluate", "deploy"]
CLASSIFICATION_KINDS = ["ingest", "validate", "feature", "train", "evaluate", "deploy"]
DASK = ("--executor", "dask")


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


@pytest.fixture
def orch(tmp_path: Path, project: Project) -> Orch:
    runner = Orch(tmp_path / "orch-home", project.root)
    # a scheduler address from the caller's shell would replace the LocalCluster
    runner.env.pop("ORCH_DASK_ADDRESS", None)
    return runner


def value_of(orch: Orch, doc: dict, name: str) -> object:
    """The (single) output value of step `name` of a run document, read from ORCH_HOME."""
    [out] = step_of(doc, name)["outputs"]
    return ArtifactStore(orch.artifacts).get(ArtifactRef.from_json(out))


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started by a fixture, and the children it started (by pid)."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)
    for child in children:  # a nanny's worker process that outlived its parent
        if child.is_running():
            child.kill()
    psutil.wait_procs(children, timeout=15)


class DaskCluster:
    """A `dask scheduler` and one `dask worker` started as subprocesses on 127.0.0.1."""

    def __init__(self, scheduler: subprocess.Popen, worker: subprocess.Popen, address: str):
        self.scheduler, self.worker, self.address = scheduler, worker, address

    def worker_pids(self) -> set[int]:
        """The worker command and its descendants (the nanny's worker process)."""
        root = psutil.Process(self.worker.pid)
        return {root.pid} | {p.pid for p in root.children(recursive=True)}


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    sched_file = tmp_path / "scheduler.json"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORCH_DASK_ADDRESS"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> subprocess.Popen:
        # same interpreter as the CLI, so the worker imports the same `orchestrator`
        with open(logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dask", *args],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        return proc

    def alive_or_fail() -> None:
        for proc in procs:
            if proc.poll() is not None:
                text = "\n".join(p.read_text() for p in sorted(logs.iterdir()))
                raise AssertionError(f"a dask process exited ({proc.returncode}):\n{text}")

    try:
        scheduler = start(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(sched_file),
        )

        def address() -> str | None:
            alive_or_fail()
            try:
                return json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                return None

        addr = wait_for(address, "the dask scheduler file", timeout=60)
        assert addr.startswith("tcp://127.0.0.1:"), addr
        worker = start(
            "worker",
            "worker",
            addr,
            "--nworkers",
            "1",
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
        )
        with Client(addr, timeout=30) as client:

            def registered() -> bool:
                alive_or_fail()
                return len(client.scheduler_info()["workers"]) == 1

            wait_for(registered, "the dask worker to register", timeout=60, interval=0.2)
        yield DaskCluster(scheduler, worker, addr)
    finally:
        for proc in reversed(procs):
            _stop(proc)


# -- user pipelines ----------------------------------------------------------------------

WHERE_HELPERS = """
def worker_address() -> str:
    # raises ValueError outside a Dask worker
    from distributed import get_worker

    return get_worker().address


def triple(x: int) -> int:
    return 3 * x
"""

WHERE_PIPELINE = """
import os

import where_helpers
from where_helpers import triple

from orchestrator import current, pipeline, step


@step(kind="ingest")
def numbers(n: int = 4) -> list[int]:
    print(f"numbers printed n={n}")
    current().log.info("numbers on worker", address=where_helpers.worker_address())
    return list(range(n))


@step(kind="feature")
def tripled(xs: list[int]) -> list[int]:
    print("tripled printed", len(xs))
    current().log.info("tripled logged", attempt=current().attempt)
    return [triple(x) for x in xs]


@step(kind="evaluate")
def where(xs: list[int]) -> dict:
    return {"pid": os.getpid(), "address": where_helpers.worker_address(), "sum": sum(xs)}


@pipeline
def located(n: int = 4):
    where(tripled(numbers(n=n)))
"""

FAILING_PIPELINE = """
from pathlib import Path

from orchestrator import current, pipeline, step

ATTEMPTS = Path(__file__).parent / "attempts.txt"


@step(kind="ingest")
def source() -> int:
    return 7


@step(kind="feature")
def broken(x: int) -> int:
    print("broken is about to fail")
    raise ValueError(f"boom from broken with x={x}")


@step(kind="train")
def below(x: int) -> int:
    return x


@step(kind="evaluate")
def further(x: int) -> int:
    return x


@step(kind="feature", retries=2, retry_backoff=0.05)
def flaky(x: int) -> int:
    with open(ATTEMPTS, "a") as f:
        f.write(f"{current().attempt}\\n")
    if current().attempt < 3:
        raise RuntimeError(f"flaky attempt {current().attempt} fails")
    return x * 10


@step(kind="evaluate")
def after_flaky(x: int) -> int:
    return x + 1


@pipeline
def failing():
    s = source()
    further(below(broken(s)))
    after_flaky(flaky(s))
"""

TIMEOUT_PIPELINE = """
import time

from orchestrator import pipeline, step


@step(timeout=1)
def sleepy(n: int = 1) -> int:
    time.sleep(60)
    return n


@step
def after_sleepy(x: int) -> int:
    return x + 1


@step
def independent(n: int = 2) -> int:
    return n * 2


@pipeline
def slow():
    after_sleepy(sleepy())
    independent()
"""

KILL_PIPELINE = """
import os
import time
from pathlib import Path

from orchestrator import pipeline, step

HERE = Path(__file__).parent


@step(retries=1, retry_backoff=0)
def victim(n: int = 5) -> int:
    with open(HERE / "pids.txt", "a") as f:
        f.write(f"{os.getpid()}\\n")
    deadline = time.monotonic() + 45
    while not (HERE / "release").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("never released")
        time.sleep(0.05)
    return n


@step
def downstream(x: int) -> int:
    return x + 1


@pipeline
def killed():
    downstream(victim())
"""


# -- 1. the cache is shared across executors ---------------------------------------------


def test_classification_on_dask_then_thread_rerun_is_cached(orch: Orch) -> None:
    first = orch.run("classification", *DASK)
    assert first["status"] == "succeeded"
    assert [s["name"] for s in first["steps"]] == CLASSIFICATION_STEPS
    assert [s["kind"] for s in first["steps"]] == CLASSIFICATION_KINDS
    assert states(first) == dict.fromkeys(CLASSIFICATION_STEPS, "succeeded")
    assert all(s["attempts"] == 1 and s["outputs"] for s in first["steps"])
    assert orch.runs()[0]["executor"] == "dask"

    # deploy ran on a Dask worker and registered the model through the metadata store
    models = orch("models", "--json")
    assert models.code == 0, models.describe()
    [version] = [m for m in models.json["models"] if m["name"] == "iris-classifier"]
    assert version["run_id"] == first["run_id"]
    assert version["stage"] == "production"
    assert version["artifact_hash"] == step_of(first, "train")["outputs"][0]["hash"]

    # a cache hit is a cache hit whatever executor produced it
    second = orch.run("classification")
    assert states(second) == dict.fromkeys(CLASSIFICATION_STEPS, "cached")
    for name in CLASSIFICATION_STEPS:
        assert step_of(second, name)["outputs"] == step_of(first, name)["outputs"]
        assert step_of(second, name)["cache_key"] == step_of(first, name)["cache_key"]
    assert orch.runs()[0]["executor"] == "thread"


def test_thread_results_are_reused_on_dask_and_back(orch: Orch, project: Project) -> None:
    project.write("helpers.py", DEMO_HELPERS)
    project.write("pipe.py", DEMO_PIPELINE)

    threaded = orch.run("pipe.py:demo")
    assert states(threaded) == dict.fromkeys(DEMO_STEPS, "succeeded")

    on_dask = orch.run("pipe.py:demo", *DASK)
    assert on_dask["status"] == "succeeded"
    assert states(on_dask) == dict.fromkeys(DEMO_STEPS, "cached")
    for name in DEMO_STEPS:
        assert step_of(on_dask, name)["outputs"] == step_of(threaded, name)["outputs"]

    # a changed parameter: `double` and `total` run on Dask workers and read the inputs
    # the thread executor wrote; the other steps stay cached
    mixed = orch.run("pipe.py:demo", "--param", "k=3", *DASK)
    assert states(mixed) == {
        "load": "cached",
        "double": "succeeded",
        "cleaned": "cached",
        "total": "succeeded",
        "count": "cached",
    }
    # double = [3, 6, 9, 12, 15]; cleaned = [(x + 1) * 10 for x in 1..5] = 200 in all
    assert value_of(orch, mixed, "double") == [3, 6, 9, 12, 15]
    assert value_of(orch, mixed, "total") == 45 + 200

    # and what the Dask workers produced is a hit for the thread executor
    back = orch.run("pipe.py:demo", "--param", "k=3")
    assert states(back) == dict.fromkeys(DEMO_STEPS, "cached")
    assert step_of(back, "total")["outputs"] == step_of(mixed, "total")["outputs"]


# -- 2. a user's file and its helper module on the workers; step logs ------------------


def test_user_pipeline_file_with_helper_runs_on_dask_workers(orch: Orch, project: Project) -> None:
    # the helper module lives next to the pipeline file, not in the working directory
    project.write("sub/where_helpers.py", WHERE_HELPERS)
    project.write("sub/located.py", WHERE_PIPELINE)

    run = orch.run("sub/located.py:located", "--param", "n=5", *DASK)
    assert run["status"] == "succeeded"
    assert states(run) == {"numbers": "succeeded", "tripled": "succeeded", "where": "succeeded"}
    assert value_of(orch, run, "tripled") == [0, 3, 6, 9, 12]
    where = value_of(orch, run, "where")
    assert isinstance(where, dict)
    # `get_worker()` only answers inside a Dask worker: the step ran on the cluster
    assert where["address"].startswith("tcp://127.0.0.1:"), where
    assert where["sum"] == 30

    shown = orch.show(run["run_id"])
    numbers_log = step_of(shown, "numbers")["log"]
    assert "numbers printed n=5" in numbers_log
    assert "numbers on worker" in numbers_log and "address='tcp://127.0.0.1:" in numbers_log
    tripled_log = step_of(shown, "tripled")["log"]
    assert "tripled printed 5" in tripled_log
    assert "[info] tripled logged attempt=1" in tripled_log
    assert "numbers printed" not in tripled_log  # each step keeps its own lines


# -- 3. failures and retries -------------------------------------------------------------


def test_failing_step_skips_descendants_and_retries_succeed(orch: Orch, project: Project) -> None:
    project.write("failing.py", FAILING_PIPELINE)
    run = orch.run("failing.py:failing", *DASK, code=1)
    assert run["status"] == "failed"
    assert states(run) == {
        "source": "succeeded",
        "broken": "failed",
        "below": "skipped",
        "further": "skipped",
        "flaky": "succeeded",
        "after_flaky": "succeeded",
    }
    broken = step_of(run, "broken")
    assert broken["error"] == "ValueError: boom from broken with x=7"
    assert broken["attempts"] == 1
    for name in ("below", "further"):
        assert step_of(run, name)["reason"] == "upstream step 'broken' failed"

    flaky = step_of(run, "flaky")
    assert flaky["attempts"] == 3
    assert flaky["error"] is None
    # each attempt was a separate Dask task that saw its own attempt number
    assert project.path("attempts.txt").read_text().split() == ["1", "2", "3"]
    assert value_of(orch, run, "after_flaky") == 71

    shown = orch.show(run["run_id"])
    error = step_of(shown, "broken")["error"]
    # the worker's traceback crossed the Dask boundary as text
    assert error.startswith("ValueError: boom from broken with x=7")
    assert "Traceback (most recent call last)" in error
    assert 'raise ValueError(f"boom from broken with x={x}")' in error
    assert "broken is about to fail" in step_of(shown, "broken")["log"]


# -- 4. timeouts -------------------------------------------------------------------------


def test_timeout_on_dask_fails_the_step_and_the_run_finishes(orch: Orch, project: Project) -> None:
    project.write("slow.py", TIMEOUT_PIPELINE)
    # the step sleeps 60 s; a run that waited for it (or a shutdown that hung on the busy
    # worker) would exceed the subprocess timeout and fail here with TimeoutExpired
    res = orch("run", "slow.py:slow", "--json", *DASK, timeout=55)
    assert res.code == 1, res.describe()
    assert "Traceback" not in res.err, res.describe()
    run = res.json
    assert run["status"] == "failed"
    assert states(run) == {
        "sleepy": "failed",
        "after_sleepy": "skipped",
        "independent": "succeeded",
    }
    sleepy = step_of(run, "sleepy")
    # a task running on a Dask worker cannot be interrupted there: the engine abandons it
    # and says so
    assert sleepy["error"] == (
        "step 'sleepy' timed out after 1s (it could not be stopped and was abandoned)"
    )
    assert sleepy["attempts"] == 1
    assert value_of(orch, run, "independent") == 4
    assert orch.runs()[0]["status"] == "failed"


# -- 5. a worker killed during a step -----------------------------------------------------


def _run_and_kill_the_victim(orch: Orch, project: Project, retries: int) -> tuple[int, str, int]:
    """Run KILL_PIPELINE on a LocalCluster, SIGKILL the worker process running `victim`,
    then let the step (and any re-run) return; the exit code, stdout and the killed pid."""
    project.write("killed.py", KILL_PIPELINE.replace("retries=1", f"retries={retries}"))
    pids_file, release = project.path("pids.txt"), project.path("release")
    proc = orch.popen("run", "killed.py:killed", "--json", *DASK, log=project.root / "cli")
    try:

        def first_pid() -> int | None:
            assert proc.poll() is None, "the run ended before the step started"
            text = pids_file.read_text() if pids_file.exists() else ""
            return int(text.split()[0]) if text.endswith("\n") else None

        victim_pid = wait_for(first_pid, "the step to write its pid", timeout=60)
        # it is a LocalCluster worker process, a descendant of the CLI, not the CLI itself
        assert victim_pid != proc.pid
        assert victim_pid in {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        os.kill(victim_pid, signal.SIGKILL)

        def gone() -> bool:
            try:
                return psutil.Process(victim_pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        wait_for(gone, "the killed worker to die", timeout=30)
        release.touch()  # only now may a (re-)run of the step return
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = (project.root / "cli.err").read_text()
    assert "Traceback" not in err, err
    return code, (project.root / "cli.out").read_text(), victim_pid


def test_worker_killed_during_a_step_ends_the_attempt_and_a_retry_succeeds(
    orch: Orch, project: Project
) -> None:
    """What happens: the scheduler reports the lost worker (a `remove-worker` event); the
    executor fails the attempt with an error naming the worker and drops the Dask task,
    and the engine's retry (the step allows one) runs attempt 2 in a live worker process
    (the surviving one, or the process the nanny restarted). Both attempts are recorded.
    """
    code, out, victim_pid = _run_and_kill_the_victim(orch, project, retries=1)
    assert code == 0, out
    run = json.loads(out)
    assert run["status"] == "succeeded"
    assert states(run) == {"victim": "succeeded", "downstream": "succeeded"}
    assert step_of(run, "victim")["attempts"] == 2
    assert value_of(orch, run, "downstream") == 6
    history = step_of(orch.show(run["run_id"]), "victim")["attempt_history"]
    assert [(a["attempt"], a["state"]) for a in history] == [(1, "failed"), (2, "succeeded")]
    assert history[0]["error"].startswith("step 'victim': its Dask worker tcp://127.0.0.1:")
    assert history[0]["error"].endswith(" was lost during the attempt"), history[0]
    # attempt 1 ran in the killed process; attempt 2 (the last to start) in a live one.
    # (Dask may have begun a re-run of attempt 1 elsewhere before it was told to drop it.)
    pids = [int(p) for p in project.path("pids.txt").read_text().split()]
    assert pids[0] == victim_pid and pids[-1] != victim_pid, pids
    assert 2 <= len(pids) <= 3, pids


def test_worker_killed_during_a_step_without_retries_fails_it_clearly(
    orch: Orch, project: Project
) -> None:
    code, out, _ = _run_and_kill_the_victim(orch, project, retries=0)
    assert code == 1, out
    run = json.loads(out)
    assert run["status"] == "failed"
    assert states(run) == {"victim": "failed", "downstream": "skipped"}
    victim = step_of(run, "victim")
    assert victim["attempts"] == 1
    assert victim["error"].startswith("step 'victim': its Dask worker tcp://127.0.0.1:")
    assert victim["error"].endswith(" was lost during the attempt"), victim
    assert step_of(run, "downstream")["reason"] == "upstream step 'victim' failed"


# -- 6. an external scheduler: --dask-address and ORCH_DASK_ADDRESS -------------------------


def test_dask_address_runs_on_an_external_scheduler(
    orch: Orch, project: Project, dask_cluster: DaskCluster
) -> None:
    project.write("sub/where_helpers.py", WHERE_HELPERS)
    project.write("sub/located.py", WHERE_PIPELINE)

    run = orch.run("sub/located.py:located", *DASK, "--dask-address", dask_cluster.address)
    assert run["status"] == "succeeded"
    assert states(run) == {"numbers": "succeeded", "tripled": "succeeded", "where": "succeeded"}
    where = value_of(orch, run, "where")
    assert isinstance(where, dict)
    # the steps ran in the `dask worker` we started, not in a LocalCluster of the CLI
    assert where["pid"] in dask_cluster.worker_pids(), (where, dask_cluster.worker_pids())
    assert where["sum"] == 18
    log = orch.show(run["run_id"])
    assert "tripled printed 4" in step_of(log, "tripled")["log"]

    # the same through the environment variable, with a new parameter so steps run again
    orch.env["ORCH_DASK_ADDRESS"] = dask_cluster.address
    again = orch.run("sub/located.py:located", "--param", "n=2", *DASK)
    assert states(again) == {"numbers": "succeeded", "tripled": "succeeded", "where": "succeeded"}
    where2 = value_of(orch, again, "where")
    assert isinstance(where2, dict)
    assert where2["pid"] == where["pid"]  # one worker process, still the same one
    assert where2["sum"] == 3


def test_unreachable_dask_address_is_one_clear_error(orch: Orch, project: Project) -> None:
    project.write("sub/where_helpers.py", WHERE_HELPERS)
    project.write("sub/located.py", WHERE_PIPELINE)
    address = "tcp://127.0.0.1:1"
    # the executor gives the scheduler 10 s to answer; the bound only turns a hang into a
    # failure
    args = ("run", "sub/located.py:located", "--json", *DASK, "--dask-address", address)
    res = orch(*args, timeout=90)
    assert res.code == 2, res.describe()
    assert res.out == "", res.describe()  # no half JSON document
    assert "Traceback" not in res.err, res.describe()
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.describe()
    assert lines[0].startswith(f"error: cannot reach the Dask scheduler at {address}: "), lines
    # no step ran anywhere: nothing was written to the artifact store
    assert not [p for p in orch.artifacts.rglob("*") if p.is_file()]


# -- 4. mapped steps ---------------------------------------------------------------------

MAPPED = """
from orchestrator import pipeline, step


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
    return {"x": x * 10, "address": address}


@step
def collect(rows: list[dict]) -> list[int]:
    return [r["x"] for r in rows]


@pipeline
def mapped(n: int = 4):
    return collect(where.map(x=numbers(n)))
"""


def test_mapped_children_run_on_dask_workers_and_are_cached_locally(
    orch: Orch, project: Project
) -> None:
    project.write("mapped.py", MAPPED)
    run = orch.run("mapped.py:mapped", *DASK)
    assert [states(run)[f"where[{i}]"] for i in range(4)] == ["succeeded"] * 4
    assert value_of(orch, run, "collect") == [0, 10, 20, 30]
    rows = value_of(orch, run, "where")
    assert all(r["address"].startswith("tcp://127.0.0.1:") for r in rows), rows
    again = orch.run("mapped.py:mapped", "--param", "n=5")  # thread: 4 hits, one new child
    assert [states(again)[f"where[{i}]"] for i in range(4)] == ["cached"] * 4
    assert states(again)["where[4]"] == "succeeded"
    assert value_of(orch, again, "where")[4]["address"] == "here"


# -- small values inline ------------------------------------------------------------------


def test_small_values_round_trip_inline_through_dask_workers(
    orch: Orch, project: Project, tmp_path: Path
) -> None:
    project.write("helpers.py", DEMO_HELPERS)
    project.write("pipe.py", DEMO_PIPELINE)
    on_dask = orch.run("pipe.py:demo", "--param", "k=3", *DASK)
    assert states(on_dask) == dict.fromkeys(DEMO_STEPS, "succeeded")
    for name in DEMO_STEPS:
        [out] = step_of(on_dask, name)["outputs"]
        assert "inline" in out, name  # came back in the task's result
    folder = orch.artifacts
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]
    assert value_of(orch, on_dask, "total") == 45 + 200  # the workers read inline inputs

    threaded = Orch(tmp_path / "thread-home", project.root).run("pipe.py:demo", "--param", "k=3")
    for name in DEMO_STEPS:
        assert step_of(on_dask, name)["cache_key"] == step_of(threaded, name)["cache_key"]
        assert step_of(on_dask, name)["outputs"] == step_of(threaded, name)["outputs"]
    assert states(orch.run("pipe.py:demo", "--param", "k=3")) == dict.fromkeys(DEMO_STEPS, "cached")
