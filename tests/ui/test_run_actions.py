"""A run page that tells the truth while a run goes and after it failed, and its actions.

A fresh state folder filled by the real `orch` CLI (a failed run, a step that failed on
two attempts, a run left going in the background), read through FastAPI's TestClient
on the app `orch ui` serves: the failed run's header names the failing step and its
error and opens that step; the step panel lists each attempt with its own error; a
running step's panel polls itself and shows its live log; the resume, re-run and cancel
buttons need the token and do what they say (the runs they start are real `orch`
children, checked through `orch show --json`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from orchtest import BROKEN, Orch, Project, states, step_of, wait_for

TOKEN = "run-actions-token-91c3"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
HX = {"HX-Request": "true"}

FLAKY = """
from pathlib import Path

from orchestrator import pipeline, step


@step(retries=1, retry_backoff=0.05)
def flaky(marker: str = "m") -> int:
    path = Path(marker)
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    print(f"output of attempt {n + 1}")
    raise ValueError(f"boom number {n + 1}")


@pipeline
def flow(marker: str = "m"):
    flaky(marker=marker)
"""

TICKING = """
import time
from pathlib import Path

from orchestrator import pipeline, step


@step
def ticking(started: str = "") -> int:
    Path(started).touch()
    for i in range(6000):
        print(f"tick {i}", flush=True)
        time.sleep(0.05)
    return 0


@pipeline
def flow(started: str = ""):
    ticking(started=started)
"""


@pytest.fixture
def world(tmp_path: Path) -> tuple[Orch, Project]:
    project = Project(tmp_path / "proj")
    return Orch(tmp_path / "orch-home", project.root), project


@pytest.fixture
def client(world: tuple[Orch, Project]) -> Iterator[Callable[..., Any]]:
    from fastapi.testclient import TestClient

    from orchestrator.artifacts.store import ArtifactStore
    from orchestrator.store.metadata import MetadataStore
    from orchestrator.ui.app import create_app

    orch = world[0]
    orch.home.mkdir(parents=True, exist_ok=True)
    store = MetadataStore(f"sqlite:///{orch.db}")
    made: list[Any] = []

    def make(token: str | None = TOKEN) -> Any:
        app = create_app(store, ArtifactStore(orch.artifacts), home=orch.home, token=token)
        made.append(TestClient(app, follow_redirects=False))
        return made[-1]

    yield make
    for c in made:
        c.close()
    store.close()


def _new_run(resp: Any) -> str:
    assert resp.status_code == 303, resp.text[:800]
    match = re.fullmatch(r"/runs/([A-Za-z0-9_-]+)", resp.headers["location"])
    assert match, resp.headers["location"]
    return match.group(1)


def _ended(orch: Orch, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        doc = orch.show(run_id)
        return doc if doc["status"] != "running" else None

    return wait_for(done, f"run {run_id} to end", timeout=180)  # type: ignore[no-any-return]


def test_failed_run_header_names_the_step_and_its_error_with_the_step_opened(
    world: tuple[Orch, Project], client: Callable[..., Any]
) -> None:
    orch, project = world
    project.write("broken.py", BROKEN)
    failed = orch.run("broken.py:broken", code=1)
    html = client().get(f"/runs/{failed['run_id']}").text
    header = html[html.index('id="run-header"') : html.index('class="run-layout"')]
    assert 'id="run-failure"' in header and 'data-step="explode"' in header
    assert "ValueError: boom: this step fails on purpose" in header
    panel = html[html.index('id="step-panel"') :]
    assert re.search(r'id="step-detail" data-step="explode" data-state="failed"', panel)
    assert "Traceback (most recent call last)" in panel and "about to explode" in panel


def test_a_retried_steps_panel_lists_each_attempts_own_error_and_log(
    world: tuple[Orch, Project], client: Callable[..., Any], tmp_path: Path
) -> None:
    orch, project = world
    project.write("flaky.py", FLAKY)
    doc = orch.run("flaky.py:flow", "-p", f"marker={tmp_path / 'marker'}", code=1)
    c = client()
    html = c.get(f"/runs/{doc['run_id']}/steps/flaky", headers=HX).text
    assert html.lstrip().startswith('<div class="step-detail"')  # the fragment
    assert re.search(r'<tr data-attempt="1" data-state="failed">', html)
    assert re.search(r'<tr data-attempt="2" data-state="failed">', html)
    first = re.search(r'<pre class="attempt-error">(.*?)</pre>', html, re.S)
    assert first and "boom number 1" in first.group(1) and "Traceback" in first.group(1)
    assert '<pre class="attempt-log">output of attempt 1' in html
    last = re.search(r'<pre id="step-error">(.*?)</pre>', html, re.S)
    assert last and "boom number 2" in last.group(1) and "boom number 1" not in last.group(1)
    assert 'data-live="0"' in html and "hx-trigger" not in html

    api = c.get(f"/api/runs/{doc['run_id']}/steps/flaky").json()
    cli = step_of(orch.show(doc["run_id"]), "flaky")["attempt_history"]
    assert [a["error"] for a in api["attempt_history"]] == [a["error"] for a in cli]
    assert [a["state"] for a in api["attempt_history"]] == ["failed", "failed"]


def test_a_running_steps_panel_polls_itself_with_its_live_log_and_cancel_stops_it(
    world: tuple[Orch, Project], client: Callable[..., Any], tmp_path: Path
) -> None:
    orch, project = world
    project.write("ticking.py", TICKING)
    started = tmp_path / "started"
    proc = orch.popen(
        "run", "ticking.py:flow", "-e", "process", "-p", f"started={started}",
        log=tmp_path / "runner",
    )  # fmt: skip
    try:
        wait_for(started.exists, "the ticking step to start", timeout=120)
        run_id = orch.runs()[0]["run_id"]
        c = client()

        def ticks() -> str | None:
            html = c.get(f"/runs/{run_id}/steps/ticking", headers=HX).text
            return html if "tick 3\n" in html else None

        html = wait_for(ticks, "live log lines in the step panel", timeout=60)
        assert 'data-live="1"' in html and 'hx-trigger="every 1s"' in html
        assert f'hx-get="/runs/{run_id}/steps/ticking"' in html
        assert c.get(f"/api/runs/{run_id}/steps/ticking/log").json()["live"] is True
        page = c.get(f"/runs/{run_id}").text
        assert 'data-action="cancel"' in page and 'data-action="resume"' not in page

        assert client(token=None).post(f"/runs/{run_id}/cancel").status_code == 403
        assert c.post(f"/runs/{run_id}/cancel", headers=BEARER).headers["location"] == (
            f"/runs/{run_id}"
        )
        assert proc.wait(timeout=60) == 1
    finally:
        proc.kill()
    shown = orch.show(run_id)
    assert shown["status"] == "cancelled" and states(shown) == {"ticking": "interrupted"}
    html = c.get(f"/runs/{run_id}/steps/ticking", headers=HX).text
    assert 'data-live="0"' in html and "hx-trigger" not in html
    again = c.post(f"/runs/{run_id}/cancel", headers=BEARER)
    assert again.status_code == 409
    assert f"run {run_id} is cancelled, not running: nothing to cancel" in again.text


def test_resume_and_rerun_buttons_start_runs(
    world: tuple[Orch, Project], client: Callable[..., Any]
) -> None:
    orch, project = world
    project.write("broken.py", BROKEN)
    failed = orch.run("broken.py:broken", "-p", "n=5", code=1)
    c = client()
    page = c.get(f"/runs/{failed['run_id']}").text
    assert 'data-action="resume"' in page and 'data-action="rerun"' in page
    readonly = client(token=None)
    assert "disabled" in readonly.get(f"/runs/{failed['run_id']}").text
    assert readonly.post(f"/runs/{failed['run_id']}/resume").status_code == 403

    resumed = _ended(orch, _new_run(c.post(f"/runs/{failed['run_id']}/resume", headers=BEARER)))
    assert resumed["resumed_from"] == failed["run_id"]
    assert resumed["trigger"]["kind"] == "ui"
    assert states(resumed) == {"load": "cached", "explode": "failed", "report": "skipped"}

    again = _ended(orch, _new_run(c.post(f"/runs/{failed['run_id']}/rerun", headers=BEARER)))
    before = orch.show(failed["run_id"])
    assert again["run_id"] not in (failed["run_id"], resumed["run_id"])
    assert again["params"] == before["params"] and again["params"]["n"] == 5
    assert again["target"] == before["target"] and again["executor"] == before["executor"]
    assert again["resumed_from"] is None
    assert states(again) == {"load": "cached", "explode": "failed", "report": "skipped"}

    refused = c.post(f"/runs/{failed['run_id']}/cancel", headers=BEARER)
    assert refused.status_code == 409
    assert "is failed, not running" in refused.text
