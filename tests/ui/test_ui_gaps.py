"""What a step tracked before its last attempt failed, the favicon, the serving app's
documented routes and the CLI's failure text, on runs made by the real `orch` CLI.

The start form's known bounds, executor choice and "edit and re-run" are checked too.

The project (one per module): `flaky.py`, whose step logs a metric and a parameter on
every attempt and then raises (one retry), and the built-in `classification` once, so the
store has a registered model for the serving app. Expected values come from the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests" / "e2e") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from orchtest import BROKEN, Orch, Project, wait_for  # noqa: E402

FLAKY = """
from orchestrator import current, pipeline, step


@step(retries=1)
def flaky(n: int = 1) -> int:
    current().log_params(lr=0.25)
    current().log_metric("seen", 3.5)
    current().log_metric("loss", 0.9, step=0)
    raise ValueError(f"always fails after logging [red]n={n}[/]")


@pipeline
def fl(n: int = 1):
    flaky(n=n)
"""


@pytest.fixture(scope="module")
def gaps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("ui-gaps")
    project = Project(base / "proj")
    orch = Orch(base / "orch-home", project.root)
    project.write("flaky.py", FLAKY)
    res = orch("run", "flaky.py:fl", "--json")
    assert res.code == 1, res.describe()
    return {"orch": orch, "project": project, "flaky": res}


TOKEN = "gaps-token-31c9"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _client(orch: Orch) -> TestClient:
    from orchestrator.artifacts.store import ArtifactStore
    from orchestrator.store.metadata import MetadataStore
    from orchestrator.ui.app import create_app

    store = MetadataStore(f"sqlite:///{orch.db}")
    app = create_app(store, ArtifactStore(orch.artifacts), home=orch.home, token=TOKEN)
    return TestClient(app, follow_redirects=False)


def test_a_step_whose_last_attempt_fails_keeps_what_it_tracked(gaps: dict[str, Any]) -> None:
    orch: Orch = gaps["orch"]
    run_id = gaps["flaky"].json["run_id"]
    shown = orch.show(run_id)
    assert shown["status"] == "failed"
    assert [a["state"] for a in shown["steps"][0]["attempt_history"]] == ["failed", "failed"]
    assert shown["tracked"]["metrics"] == {"seen": 3.5, "loss": 0.9}
    assert shown["tracked"]["params"] == {"lr": 0.25}
    human = orch("show", run_id, "--no-logs")
    assert human.code == 0, human.describe()
    assert "metrics: loss=0.9 seen=3.5" in human.out
    assert "tracked params: lr=0.25" in human.out
    runs = orch("runs", "--columns", "metrics", "--json")
    assert runs.code == 0, runs.describe()
    row = next(r for r in runs.json["runs"] if r["run_id"] == run_id)
    assert row["metrics"]["seen"] == 3.5, row
    with _client(orch) as client:
        html = client.get(f"/runs/{run_id}").text
    assert '<tr data-metric="seen"><td class="mono">seen</td><td class="mono">3.5</td>' in html
    assert '<tr data-param="lr"><td class="mono">lr</td><td class="mono">0.25</td>' in html


def test_the_favicon_is_served(gaps: dict[str, Any]) -> None:
    with _client(gaps["orch"]) as client:
        resp = client.get("/favicon.ico")
        page = client.get("/runs").text
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("image/svg+xml")
    assert resp.content.lstrip().startswith(b"<svg")
    assert '<link rel="icon" href="/favicon.ico"' in page


def test_a_failure_message_is_printed_as_written_without_markup(gaps: dict[str, Any]) -> None:
    orch: Orch = gaps["orch"]
    res = orch("run", "flaky.py:fl", "-p", "n=2")
    assert res.code == 1, res.describe()
    both = res.out + res.err
    assert "ValueError: always fails after logging [red]n=2[/]" in both, both
    assert "step 'flaky' failed:" in both
    gaps["project"].write("broken.py", BROKEN)
    res = orch("run", "broken.py:broken")
    assert res.code == 1, res.describe()
    assert "[red]" not in res.out + res.err and "[/]" not in res.out + res.err
    bad = orch("run", "broken.py:broken", "-p", "n=[oops")
    assert bad.code == 2, bad.describe()
    assert bad.err.startswith("error: ") and "[red]" not in bad.err and "[/" not in bad.err


def test_the_serving_apps_docs_list_predict(gaps: dict[str, Any]) -> None:
    from orchestrator.artifacts.store import ArtifactStore
    from orchestrator.serving.server import create_app
    from orchestrator.store.metadata import MetadataStore
    from orchestrator.store.registry import StoreRegistry

    orch: Orch = gaps["orch"]
    done = orch.run("classification", "--param", "model_name=docs-model")
    assert done["status"] == "succeeded", done
    store = MetadataStore(f"sqlite:///{orch.db}")
    app = create_app(StoreRegistry(store, ArtifactStore(orch.artifacts)), "docs-model")
    with TestClient(app) as client:
        spec = client.get("/openapi.json").json()
        docs = client.get("/docs")
        health = client.get("/health").json()
    assert docs.status_code == 200
    assert {"/predict", "/predict/batch", "/health", "/model"} <= set(spec["paths"]), spec["paths"]
    assert "post" in spec["paths"]["/predict"] and "post" in spec["paths"]["/predict/batch"]
    assert health["status"] == "ok"


def test_the_start_form_shows_and_enforces_known_bounds(gaps: dict[str, Any]) -> None:
    orch: Orch = gaps["orch"]
    before = {r["run_id"] for r in orch.runs()}
    with _client(orch) as client:
        blank = client.get("/pipelines/classification").text
        refused = client.post(
            "/pipelines/classification/runs", data={"test_size": "1.5"}, headers=BEARER
        )
    assert '<span class="field-hint muted" data-field="test_size">&gt; 0, &lt; 1</span>' in blank
    assert refused.status_code == 422, refused.text
    assert 'data-field="test_size">pipeline &#39;classification&#39; parameter' in refused.text
    assert "Input should be less than 1" in refused.text
    cli = orch("run", "classification", "-p", "test_size=1.5")
    assert cli.code == 2, cli.describe()
    assert cli.err.startswith("error: ") and "test_size" in cli.err and "less than 1" in cli.err
    assert "Traceback" not in cli.err
    assert {r["run_id"] for r in orch.runs()} == before, "a run started with test_size=1.5"


def test_the_start_form_offers_the_executor_and_edit_and_rerun_prefills_it(
    gaps: dict[str, Any],
) -> None:
    orch: Orch = gaps["orch"]
    earlier = orch("run", "flaky.py:fl", "-e", "process", "-p", "n=7", "--json")
    assert earlier.code == 1, earlier.describe()
    run_id = earlier.json["run_id"]
    with _client(orch) as client:
        run_page = client.get(f"/runs/{run_id}").text
        filled = client.get(f"/pipelines/fl?from={run_id}").text
        bogus = client.post("/pipelines/fl/runs", data={"_executor": "warp"}, headers=BEARER)
        started = client.post(
            "/pipelines/fl/runs", data={"n": "4", "_executor": "process"}, headers=BEARER
        )
        missing = client.get("/pipelines/fl?from=000000000000")
    assert f'id="edit-rerun" href="/pipelines/fl?from={run_id}"' in run_page
    assert '<input type="text" id="p-n" name="n" value="7">' in filled
    assert '<option value="process" selected>process</option>' in filled
    assert '<option value="thread">thread</option>' in filled
    assert bogus.status_code == 422 and "unknown executor &#39;warp&#39;" in bogus.text
    assert missing.status_code == 404
    assert started.status_code == 303, started.text
    new_id = started.headers["location"].rsplit("/", 1)[1]
    shown = wait_for(
        lambda: (doc := orch.show(new_id))["status"] != "running" and doc,
        "the run started from the form to end",
        timeout=120,
    )
    assert shown["executor"] == "process" and shown["params"]["n"] == 4, shown


def test_the_start_form_offers_step_parameters_validates_and_prefills_them(
    gaps: dict[str, Any],
) -> None:
    orch: Orch = gaps["orch"]
    earlier = orch("run", "flaky.py:fl", "-p", "flaky.n=11", "--json")
    assert earlier.code == 1, earlier.describe()
    with _client(orch) as client:
        blank = client.get("/pipelines/fl").text
        api = client.get("/api/pipelines/fl").json()
        filled = client.get(f"/pipelines/fl?from={earlier.json['run_id']}").text
        refused = client.post("/pipelines/fl/runs", data={"flaky.n": "many"}, headers=BEARER)
        started = client.post("/pipelines/fl/runs", data={"flaky.n": "5"}, headers=BEARER)
    assert '<details id="step-params">' in blank  # closed: nothing changed
    assert '<input type="text" id="p-flaky.n" name="flaky.n" value="1">' in blank
    assert api["step_params"] == [{"name": "flaky.n", "type": "int", "default": 1}]
    assert [p["name"] for p in api["params"]] == ["n"]
    assert '<details id="step-params" open>' in filled
    assert '<input type="text" id="p-flaky.n" name="flaky.n" value="11">' in filled
    assert refused.status_code == 422
    assert 'data-field="flaky.n">step &#39;flaky&#39; parameter &#39;n&#39;' in refused.text
    assert started.status_code == 303, started.text
    new_id = started.headers["location"].rsplit("/", 1)[1]
    shown = wait_for(
        lambda: (doc := orch.show(new_id))["status"] != "running" and doc,
        "the run started with a step parameter to end",
        timeout=120,
    )
    assert shown["params"]["flaky"]["n"] == 5, shown["params"]
