"""Helpers of the end-to-end suite: run the CLI, write user project files, read results.

* `Orch`: runs `python -m orchestrator ...` with `ORCH_HOME` set to a temporary folder;
  `orch("run", "pipe.py:demo", "--json")` returns a `CliResult` `(code, out, err, json)`;
* `Project`: a user's project folder; `write` and `edit` change its files as a user saves them;
* `states`, `step_of`: read a `run --json` / `show --json` document;
* `DEMO_PIPELINE`, `DEMO_HELPERS`: the standard small pipeline used by several tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import psutil

# Environment variables that would point a command at someone else's state.
_FOREIGN = ("ORCH_DB_URL", "ORCH_ARTIFACTS", "ORCH_LOG_FORMAT")


class CliResult(NamedTuple):
    code: int
    out: str
    err: str
    json: Any

    def describe(self) -> str:
        return f"exit {self.code}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"


def states(doc: dict[str, Any]) -> dict[str, str]:
    """`{step name: state}` of a `run --json` or `show --json` document."""
    return {s["name"]: s["state"] for s in doc["steps"]}


def step_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    for s in doc["steps"]:
        if s["name"] == name:
            return s
    raise AssertionError(f"no step {name!r} in {[s['name'] for s in doc['steps']]}")


class Project:
    """A user's project folder: pipeline files, helper modules, data files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.root / name

    def write(self, name: str, source: str) -> Path:
        """Create or overwrite `name` with dedented `source` (an edit, as a user saves it)."""
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(source).lstrip("\n"))
        return p

    def edit(self, name: str, old: str, new: str) -> None:
        """Replace one exact occurrence of `old` by `new` in file `name`."""
        p = self.root / name
        text = p.read_text()
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {name}"
        p.write_text(text.replace(old, new))


class Orch:
    """Runs `python -m orchestrator ...` with ORCH_HOME set to a temporary folder."""

    def __init__(self, home: Path, cwd: Path) -> None:
        self.home, self.cwd = home, cwd
        self.bucket: Any = None  # the test S3 bucket holding the artifacts, if any
        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN}
        env["ORCH_HOME"] = str(home)
        # Tests edit source files several times a second; stale .pyc files keyed by
        # (mtime seconds, size) could otherwise run yesterday's code.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        self.env = env

    @property
    def db(self) -> Path:
        return self.home / "orchestrator.db"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    def __call__(self, *args: str, cwd: Path | None = None, timeout: float = 180) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            cwd=cwd or self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        doc = None
        if "--json" in args and proc.stdout.strip():
            try:
                doc = json.loads(proc.stdout)
            except ValueError as exc:  # --json must print exactly one JSON document
                raise AssertionError(
                    f"--json printed no single JSON document ({exc}):\n"
                    f"{proc.stdout}\n--- stderr ---\n{proc.stderr}"
                ) from None
        return CliResult(proc.returncode, proc.stdout, proc.stderr, doc)

    def popen(self, *args: str, log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a command in the background; its stdout and stderr go to `log`(.out/.err)."""
        # the child keeps its own copies of the file descriptors
        with open(log.with_suffix(".out"), "wb") as out, open(log.with_suffix(".err"), "wb") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "orchestrator", *args],
                cwd=cwd or self.cwd,
                env=self.env,
                stdout=out,
                stderr=err,
            )

    # -- conveniences ------------------------------------------------------------------
    def run(self, target: str, *extra: str, code: int = 0) -> dict[str, Any]:
        """`orch run TARGET --json EXTRA...`; assert the exit code; return the JSON document."""
        res = self("run", target, "--json", *extra)
        assert res.code == code, res.describe()
        assert res.json is not None, res.describe()
        assert "Traceback" not in res.err, res.describe()
        return res.json

    def show(self, run_id: str) -> dict[str, Any]:
        res = self("show", run_id, "--json")
        assert res.code == 0, res.describe()
        return res.json

    def runs(self) -> list[dict[str, Any]]:
        res = self("runs", "--json")
        assert res.code == 0, res.describe()
        return res.json["runs"]

    def explain(self, run_id: str, step: str) -> str:
        res = self("explain", run_id, step)
        assert res.code == 0, res.describe()
        return res.out

    def artifact_files(self, hash_: str) -> list[Path]:
        return sorted(self.artifacts.glob(f"*/{hash_}.*"))

    def artifact_bytes(self, hash_: str) -> bytes:
        """The stored bytes of the one artifact `hash_`: its file, or its object when the
        artifacts are in the test bucket."""
        if self.bucket is None:
            (path,) = self.artifact_files(hash_)
            return path.read_bytes()
        (key,) = [k for k in self.bucket.keys() if k.rsplit("/", 1)[-1].startswith(hash_ + ".")]
        got = self.bucket.client.get_object(Bucket=self.bucket.name, Key=key)
        return bytes(got["Body"].read())


def wait_for(
    predicate: Callable[[], Any], what: str, timeout: float = 60.0, interval: float = 0.05
) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


DEMO_PIPELINE = """
import helpers
from helpers import weight

from orchestrator import pipeline, step


@step(kind="ingest")
def load(n: int) -> list[int]:
    return list(range(1, n + 1))


@step(kind="feature")
def double(xs: list[int], k: int = 2) -> list[int]:
    return [x * k for x in xs]


@step(kind="feature")
def cleaned(xs: list[int]) -> list[int]:
    return [helpers.clean(x) for x in xs]


@step(kind="evaluate")
def total(a: list[int], b: list[int]) -> int:
    return sum(a) + sum(b)


@step(kind="evaluate")
def count(xs: list[int], offset: int = 0) -> int:
    return sum(weight(x) for x in xs) + offset


@pipeline
def demo(n: int = 5, k: int = 2):
    xs = load(n=n)
    total(double(xs, k=k), cleaned(xs))
    count(xs)
"""

DEMO_HELPERS = """
SCALE = 10


def _shift(x: int) -> int:
    return x + 1


def clean(x: int) -> int:
    return _shift(x) * SCALE


def weight(x: int) -> int:
    return x % 3
"""

DEMO_STEPS = ("load", "double", "cleaned", "total", "count")


# A pipeline whose middle step logs, then fails: `broken.py:broken` in the UI tests.
BROKEN = """
from orchestrator import current, pipeline, step


@step(kind="ingest")
def load(n: int = 3) -> list[int]:
    current().log.info("loaded rows for the broken pipeline", rows=n)
    return list(range(n))


@step(kind="train")
def explode(xs: list[int]) -> int:
    current().log.info("about to explode", rows=len(xs))
    raise ValueError("boom: this step fails on purpose")


@step(kind="evaluate")
def report(x: int) -> int:
    return x


@pipeline
def broken(n: int = 3):
    report(explode(load(n=n)))
"""


# A step that writes its pid to `{pidfile}` and spins forever (orphan tests).
ENDLESS_PIPELINE = """
import os
from pathlib import Path

from orchestrator import pipeline, step


@step
def endless() -> int:
    Path({pidfile!r}).write_text(str(os.getpid()))
    while True:
        pass


@pipeline
def spinning():
    endless()
"""


def process_gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie counts: its parent has not reaped it)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
