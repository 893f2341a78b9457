"""A sweep opens in the compare view: `/compare?sweep=RUN` lists every combination's
parameters and metrics best first with the best marked, and the sweep run's page links
there. The sweep (of `uisweep.py`, a module name no other test uses) is made by the real
`orch sweep`; expected rows come from
`orch sweep-table RUN --json`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_experiments_ui import tags

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests" / "e2e") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from orchtest import Orch, Project  # noqa: E402

TUNE = """
from pydantic import BaseModel

from orchestrator import pipeline, step


@step(kind="ingest")
def ingest(n: int = 20) -> list[float]:
    return [float(i % 5) for i in range(n)]


@step(kind="train")
def train(xs: list[float], C: float = 1.0, depth: int = 1) -> dict[str, float]:
    return {"C": C, "depth": float(depth), "mean": sum(xs) / len(xs)}


class Report(BaseModel):
    metrics: dict[str, float]


@step(kind="evaluate")
def evaluate(model: dict[str, float]) -> Report:
    score = model["mean"] - abs(model["C"] - 1.0) - 1 / model["depth"]
    return Report(metrics={"score": score, "loss": -score})


@pipeline
def tune(n: int = 20):
    evaluate(train(ingest(n=n)))
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("ui-sweep")
    project = Project(base / "proj")
    orch = Orch(base / "orch-home", project.root)
    project.write("uisweep.py", TUNE)
    grid = ("--grid", "train.C=0.1,1,10", "--grid", "train.depth=1,2")
    res = orch("sweep", "uisweep.py:tune", *grid, "--metric", "score", "--json")
    assert res.code == 0, res.describe()
    plain = orch.run("uisweep.py:tune")
    return {"orch": orch, "rows": res.json, "run_id": res.json[0]["run_id"], "plain": plain}


@pytest.fixture(autouse=True)
def importable(swept: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's modules import, as in `orch ui` started in the project (its outputs
    are instances of the project's classes)."""
    monkeypatch.syspath_prepend(str(swept["orch"].cwd))


def _client(orch: Orch) -> TestClient:
    from orchestrator.artifacts.store import ArtifactStore
    from orchestrator.store.metadata import MetadataStore
    from orchestrator.ui.app import create_app

    store = MetadataStore(f"sqlite:///{orch.db}")
    return TestClient(create_app(store, ArtifactStore(orch.artifacts), home=orch.home))


def test_a_sweep_opens_in_the_compare_view_best_first_and_marked(swept: dict[str, Any]) -> None:
    orch, run_id = swept["orch"], swept["run_id"]
    table = orch("sweep-table", run_id, "--json")
    assert table.code == 0, table.describe()
    expected = table.json
    assert len(expected) == 6 and expected[0]["params"]["train.C"] == 1.0, expected
    with _client(orch) as client:
        resp = client.get(f"/compare?sweep={run_id}")
        doc = client.get(f"/api/sweeps/{run_id}").json()
    assert resp.status_code == 200, resp.text
    rows = tags(resp.text, "tr", data_combination="*")
    assert [r["data-combination"] for r in rows] == [r["combination"] for r in expected]
    assert [r.get("class") for r in rows] == ["best"] + [None] * 5
    cells = tags(resp.text, "td", data_col="*")
    for want in expected:
        for name, value in want["params"].items():
            col = f"params.{name}"
            assert any(c["data-col"] == col and c["_text"] == str(value) for c in cells)
        for name, value in want["metrics"].items():
            shown = f"{value:.6g}"
            assert any(c["data-col"] == f"metrics.{name}" and c["_text"] == shown for c in cells)
    # ranked as `orch sweep-table` ranks it: the first metric by name, a loss, lowest first
    assert "ranked by loss (lower is better)" in resp.text
    assert doc["best"] == expected[0]["combination"] and doc["metric"] == "loss"
    assert [r["metrics"] for r in doc["rows"]] == [r["metrics"] for r in expected]


def test_the_sweep_runs_page_links_to_its_compare_view(swept: dict[str, Any]) -> None:
    run_id, plain = swept["run_id"], swept["plain"]["run_id"]
    with _client(swept["orch"]) as client:
        sweep_page = client.get(f"/runs/{run_id}").text
        plain_page = client.get(f"/runs/{plain}").text
        not_sweep = client.get(f"/compare?sweep={plain}")
        unknown = client.get("/compare?sweep=000000000000")
    links = tags(sweep_page, "a", id="run-sweep")
    assert [a["href"] for a in links] == [f"/compare?sweep={run_id}"]
    assert not tags(plain_page, "a", id="run-sweep")
    assert not_sweep.status_code == 404
    assert f"run {plain} is not a sweep" in not_sweep.text
    assert unknown.status_code == 404
