"""Fixtures of the web UI's API tests (tests/ui/test_api.py).

Nothing is mocked: `ui_world` (one per pytest-xdist worker) makes a user project in a
temporary folder and fills a real state folder through the real `orch` command line:

* `classification` twice (C=1.0, then C=10.0): `iris-classifier` gets two versions, the
  second better and promoted (the first archived); the second run reuses cached steps;
* `broken.py:broken`, whose middle step logs, then raises: a failed run with a skipped step;
* `flow.py`: a schedule `every15` and an event trigger `on-data`; an event `new-data`
  (whose data holds HTML, to check escaping) is emitted, then `orch daemon --once --now`
  starts one tick run and one event run.

`browser` (for the Chromium tests, test_browser*.py): headless Debian chromium driven by
playwright, one per worker process (playwright's sync API runs once per process).

`ui_client(token=..., definitions=...)` builds the app with `create_app` over one
`MetadataStore` and `ArtifactStore` on that state folder (the CLI's own classes) and
returns a `TestClient`; each call is a fresh client, so cookies never leak between tests.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests" / "e2e") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from orchtest import BROKEN, Orch, Project  # noqa: E402

try:
    from playwright.sync_api import Browser, sync_playwright
except ImportError:  # reported by the `browser` fixture, with the fix
    sync_playwright = None  # type: ignore[assignment]

TOKEN = "api-test-token-7d2e"
MODEL = "iris-classifier"
TICK = "2026-11-23T10:00:00+00:00"
EVIL = "<script>alert('x')</script>"


FLOW = """
from orchestrator import pipeline, step
from orchestrator.triggers.schedules import Schedule
from orchestrator.triggers.events import EventTrigger


@step(kind="ingest")
def stamp(scheduled_time: str = "") -> str:
    return scheduled_time


@step(kind="evaluate")
def size(text: str, factor: int = 1) -> int:
    return len(text) * factor


@pipeline
def job(scheduled_time: str = "", factor: int = 1):
    size(stamp(scheduled_time=scheduled_time), factor=factor)


every15 = Schedule(name="every15", pipeline="job", cron="*/15 * * * *")
on_data = EventTrigger(name="on-data", event="new-data", pipeline="job")
"""


@dataclasses.dataclass
class World:
    orch: Orch
    project: Project
    first: dict[str, Any]  # `run --json` of classification, C=1.0
    second: dict[str, Any]  # classification, C=10.0 (cached steps, v2 promoted)
    failed: dict[str, Any]  # broken.py:broken
    tick_run: str  # the run the schedule's tick started
    event_run: str  # the run the event started
    event_id: int

    TOKEN: ClassVar[str] = TOKEN
    MODEL: ClassVar[str] = MODEL
    TICK: ClassVar[str] = TICK
    EVIL: ClassVar[str] = EVIL

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    @property
    def home(self) -> Path:
        return self.orch.home

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.orch.db}"


@pytest.fixture(scope="session")
def ui_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("ui-api")
    project = Project(base / "proj")
    orch = Orch(base / "orch-home", project.root)
    first = orch.run("classification", "--param", "C=1.0")
    second = orch.run("classification", "--param", "C=10.0")
    project.write("broken.py", BROKEN)
    failed = orch.run("broken.py:broken", code=1)
    project.write("flow.py", FLOW)
    emitted = orch("event", "emit", "new-data", "--data", f"scheduled_time={EVIL}", "--json")
    assert emitted.code == 0, emitted.describe()
    daemon = orch("daemon", "flow.py", "--once", "--now", "2026-11-23T10:00:10+00:00")
    assert daemon.code == 0, daemon.describe()
    runs = orch.runs()
    by_kind = {(r["trigger"] or {}).get("kind"): r["run_id"] for r in runs}
    assert {"schedule", "event"} <= set(by_kind), runs
    return World(
        orch,
        project,
        first,
        second,
        failed,
        by_kind["schedule"],
        by_kind["event"],
        int(emitted.json["event_id"]),
    )


@pytest.fixture(scope="session")
def ui_stores(ui_world: World) -> Iterator[tuple[Any, Any]]:
    from orchestrator.artifacts.store import ArtifactStore
    from orchestrator.store.metadata import MetadataStore

    store = MetadataStore(ui_world.db_url)
    try:
        yield store, ArtifactStore(ui_world.home / "artifacts")
    finally:
        store.close()


@pytest.fixture
def ui_client(ui_world: World, ui_stores: tuple[Any, Any]) -> Iterator[Callable[..., Any]]:
    from fastapi.testclient import TestClient

    from orchestrator.ui.app import create_app

    clients: list[Any] = []

    def make(token: str | None = None, definitions: list[Any] | None = None) -> Any:
        store, artifacts = ui_stores
        app = create_app(store, artifacts, home=ui_world.home, token=token, definitions=definitions)
        client = TestClient(app, follow_redirects=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def chromium_path() -> str:
    """Debian's chromium, installed by scripts/install-browser.sh when missing (as the
    Docker and PostgreSQL fixtures start their services), or ORCH_CHROMIUM."""
    path = os.environ.get("ORCH_CHROMIUM") or shutil.which("chromium")
    if path:
        return path
    script = Path(__file__).resolve().parents[2] / "scripts" / "install-browser.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.fail(
            f"no chromium, and {script.name} could not install it (exit {proc.returncode}):\n"
            f"{proc.stderr[-2000:]}\nor set ORCH_CHROMIUM to a chromium binary",
            pytrace=False,
        )
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.fail(
            "playwright is not installed: pip install -e '.[test]' "
            "(then `bash scripts/install-browser.sh` for the browser)",
            pytrace=False,
        )
    path = chromium_path()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()
