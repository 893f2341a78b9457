"""The web UI's pages and JSON API over a store filled by the real CLI (see conftest.py).

Every endpoint is asked through FastAPI's TestClient on the app `orch ui` serves (one
test starts the real `orch ui` command and talks to it over loopback). Expected values
come from the CLI (`orch show --json`, `orch graph --format dot`, `orch models --json`,
`orch schedules --json`), never from the UI's own code.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import uuid
from collections import Counter
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from orchtest import states, step_of, wait_for

MODEL = "iris-classifier"  # the built-in classification pipeline's model


# -- reading HTML -----------------------------------------------------------------------
class _Collect(HTMLParser):
    """Every element as (tag, attrs, text inside it), in document order."""

    VOID = {"input", "br", "meta", "link", "img", "hr", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str], list[str]]] = []
        self.open: list[tuple[str, dict[str, str], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = (tag, {k: v or "" for k, v in attrs}, [])
        self.found.append(el)
        if tag not in self.VOID:
            self.open.append(el)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i][0] == tag:
                del self.open[i:]
                return

    def handle_data(self, data: str) -> None:
        for el in self.open:
            el[2].append(data)


def elements(html: str, tag: str, **attrs: str) -> list[dict[str, Any]]:
    """Elements `<tag ...>` having each attribute (`data_step` -> `data-step`); with `_text`."""
    parser = _Collect()
    parser.feed(html)
    want = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
    out = []
    for name, el_attrs, text in parser.found:
        if name != tag:
            continue
        if all((el_attrs.get(k) == v) if v != "*" else (k in el_attrs) for k, v in want.items()):
            out.append(el_attrs | {"_text": "".join(text)})
    return out


def one(html: str, tag: str, **attrs: str) -> dict[str, Any]:
    got = elements(html, tag, **attrs)
    assert len(got) == 1, f"expected one <{tag} {attrs}>, found {len(got)}"
    return got[0]


def graph_data(html: str) -> dict[str, Any]:
    return json.loads(one(html, "script", id="graph-data")["_text"])


def cli_edges(world: Any, target: str) -> set[tuple[str, str]]:
    res = world.orch("graph", target, "--format", "dot")
    assert res.code == 0, res.describe()
    return set(re.findall(r'^\s*"([^"]+)" -> "([^"]+)";', res.out, re.M))


def cli_models(world: Any) -> dict[int, str]:
    res = world.orch("models", MODEL, "--json")
    assert res.code == 0, res.describe()
    return {m["version"]: m["stage"] for m in res.json["models"]}


def cli_run_ids(world: Any) -> list[str]:
    res = world.orch("runs", "--limit", "1000", "--json")
    assert res.code == 0, res.describe()
    return [r["run_id"] for r in res.json["runs"]]


# -- runs list ----------------------------------------------------------------------------
def test_root_redirects_to_the_runs_list(ui_client: Any) -> None:
    resp = ui_client().get("/")
    assert resp.status_code in (302, 303, 307)
    assert resp.headers["location"] == "/runs"


def test_runs_list_shows_every_run_newest_first_with_step_counts(
    ui_world: Any, ui_client: Any
) -> None:
    client = ui_client()
    expected = cli_run_ids(ui_world)  # newest first
    doc = client.get("/api/runs").json()
    assert [r["run_id"] for r in doc["runs"]] == expected
    assert doc["total"] == len(expected) and doc["page"] == 1
    failed = next(r for r in doc["runs"] if r["id"] == ui_world.failed["run_id"])
    assert failed["status"] == "failed"
    assert failed["counts"] == {"succeeded": 1, "failed": 1, "skipped": 1}
    second = next(r for r in doc["runs"] if r["id"] == ui_world.second["run_id"])
    shown = states(ui_world.second)
    assert second["counts"] == {s: list(shown.values()).count(s) for s in set(shown.values())}
    kinds = {r["id"]: r["trigger"]["kind"] for r in doc["runs"]}
    assert kinds[ui_world.tick_run] == "schedule" and kinds[ui_world.event_run] == "event"
    assert kinds[ui_world.first["run_id"]] == "manual"

    html = client.get("/runs").text
    rows = elements(html, "tr", data_run_id="*")
    assert [r["data-run-id"] for r in rows] == expected
    for r in rows:
        assert one(html, "a", href=f"/runs/{r['data-run-id']}")
    assert rows[expected.index(ui_world.failed["run_id"])]["data-status"] == "failed"
    tick_row = rows[expected.index(ui_world.tick_run)]["_text"]
    assert "schedule tick" in tick_row


def test_runs_list_filters_by_pipeline_and_status(ui_world: Any, ui_client: Any) -> None:
    client = ui_client()
    failed = client.get("/api/runs", params={"status": "failed"}).json()["runs"]
    assert [r["id"] for r in failed] == [ui_world.failed["run_id"]]
    classification = client.get("/api/runs", params={"pipeline": "classification"}).json()
    assert {r["id"] for r in classification["runs"]} == {
        ui_world.first["run_id"],
        ui_world.second["run_id"],
    }
    assert classification["total"] == 2
    none = client.get("/api/runs", params={"pipeline": "classification", "status": "failed"})
    assert none.json()["runs"] == [] and none.json()["total"] == 0

    html = client.get("/runs", params={"pipeline": "broken", "status": ""}).text
    rows = elements(html, "tr", data_run_id="*")
    assert [(r["data-run-id"], r["data-status"]) for r in rows] == [
        (ui_world.failed["run_id"], "failed")
    ]
    form = one(html, "form", id="run-filters")
    assert form["method"] == "get" and form["action"] == "/runs"
    assert one(html, "option", value="broken").get("selected") is not None
    everything = client.get("/runs", params={"pipeline": "", "status": ""}).text
    assert len(elements(everything, "tr", data_run_id="*")) == len(cli_run_ids(ui_world))


def test_runs_pages_cover_every_run_once(ui_world: Any, ui_client: Any) -> None:
    client = ui_client()
    expected = cli_run_ids(ui_world)
    seen: list[str] = []
    for page in range(1, len(expected) + 2):
        doc = client.get("/api/runs", params={"page": page, "per_page": 2}).json()
        assert doc["total"] == len(expected) and doc["per_page"] == 2
        seen += [r["id"] for r in doc["runs"]]
    assert seen == expected  # in order, none twice, and the page past the end is empty

    html = client.get("/runs", params={"page": 2, "per_page": 2}).text
    assert [r["data-run-id"] for r in elements(html, "tr", data_run_id="*")] == expected[2:4]
    pager = one(html, "nav", id="pager")
    assert pager["data-page"] == "2" and pager["data-pages"] == str(-(-len(expected) // 2))
    assert "page=1&" in one(html, "a", rel="prev")["href"]
    assert "page=3&" in one(html, "a", rel="next")["href"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "-1"}, "page"),
        ({"page": "0"}, "page"),
        ({"page": "two"}, "page"),
        ({"per_page": "100000"}, "per_page"),
        ({"status": "notastatus"}, "status"),
        ({"pipeline": "x' OR '1'='1"}, "pipeline"),
        ({"pipeline": "../../etc/passwd"}, "pipeline"),
        ({"pipeline": "a; DROP TABLE runs; --"}, "pipeline"),
    ],
)
def test_bad_query_parameters_are_refused_with_422(
    ui_world: Any, ui_client: Any, params: dict[str, str], field: str
) -> None:
    client = ui_client()
    resp = client.get("/api/runs", params=params)
    assert resp.status_code == 422, resp.text
    assert any(field in err["loc"] for err in resp.json()["detail"]), resp.json()
    page = client.get("/runs", params=params)
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert field in one(page.text, "pre", id="error-detail")["_text"]
    assert client.get("/api/runs").json()["total"] == len(cli_run_ids(ui_world))


@pytest.mark.parametrize(
    "path",
    [
        "/runs/..%2F..%2Fetc%2Fpasswd",
        "/api/runs/..%2F..%2Fetc%2Fpasswd",
        "/api/runs/..%2Forchestrator.db/graph",
        "/runs/abc'%20OR%20'1'='1",
        "/api/runs/abc'%20OR%20'1'='1",
        "/api/runs/x%3BDROP%20TABLE%20runs",
        "/api/runs/" + "a" * 33,
        "/runs/{run}/steps/..%2F..%2Fsecret",
        "/api/runs/{run}/steps/a'%20OR%201=1",
        "/api/artifacts/..%2F..%2Forchestrator.db",
        "/api/artifacts/NOT-A-HASH",
        "/models/iris%27%3B--",
        "/api/models/..%2Fx",
        "/pipelines/%3Cscript%3E",
        "/drift/abc",
        "/drift/-1",
    ],
)
def test_ids_with_paths_or_sql_are_refused_with_422(
    ui_world: Any, ui_client: Any, path: str
) -> None:
    resp = ui_client().get(path.format(run=ui_world.failed["run_id"]))
    assert resp.status_code == 422, (path, resp.status_code, resp.text[:300])


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/runs/0123456789ab", "0123456789ab"),
        ("/api/runs/0123456789ab", "0123456789ab"),
        ("/api/runs/0123456789ab/graph", "0123456789ab"),
        ("/runs/{run}/steps/nosuchstep", "nosuchstep"),
        ("/api/runs/{run}/steps/nosuchstep", "nosuchstep"),
        ("/api/runs/{run}/steps/nosuchstep/log", "nosuchstep"),
        ("/pipelines/nosuchpipeline", "nosuchpipeline"),
        ("/models/nosuchmodel", "nosuchmodel"),
        ("/api/models/nosuchmodel", "nosuchmodel"),
        ("/api/artifacts/" + "0" * 32, "0" * 32),
        ("/drift/999999", "999999"),
        ("/api/drift/999999", "999999"),
        ("/no/such/page", "/no/such/page"),
    ],
)
def test_what_does_not_exist_is_a_clear_404(
    ui_world: Any, ui_client: Any, path: str, named: str
) -> None:
    resp = ui_client().get(path.format(run=ui_world.failed["run_id"]))
    assert resp.status_code == 404, resp.text[:300]
    if path.startswith("/api/"):
        assert named in resp.json()["detail"]
    else:
        assert resp.headers["content-type"].startswith("text/html")
        assert named in one(resp.text, "pre", id="error-detail")["_text"]


# -- a run's page -------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["first", "second", "failed"])
def test_run_page_has_every_step_in_its_state_and_the_graph(
    ui_world: Any, ui_client: Any, which: str
) -> None:
    run = getattr(ui_world, which)
    shown = ui_world.orch.show(run["run_id"])
    expected = states(shown)
    html = ui_client().get(f"/runs/{run['run_id']}").text
    rows = elements(html, "tr", data_step="*")
    assert {r["data-step"]: r["data-state"] for r in rows} == expected
    graph = graph_data(html)
    assert {n["id"]: n["state"] for n in graph["nodes"]} == expected
    target = "classification" if which != "failed" else "broken.py:broken"
    cwd_edges = cli_edges(ui_world, target)
    assert {(e["source"], e["target"]) for e in graph["edges"]} == cwd_edges
    assert one(html, "div", id="dag") is not None
    assert one(html, "div", id="step-panel") is not None
    header = one(html, "div", id="run-header")
    assert header["data-run-id"] == run["run_id"] and header["data-status"] == shown["status"]
    assert shown["pipeline"] in header["_text"]
    params = one(html, "table", id="run-params")["_text"]
    for key in shown["params"]:
        assert key in params


def test_run_json_matches_orch_show(ui_world: Any, ui_client: Any) -> None:
    client = ui_client()
    run_id = ui_world.second["run_id"]
    shown = ui_world.orch.show(run_id)
    doc = client.get(f"/api/runs/{run_id}").json()
    assert doc["run"]["id"] == run_id and doc["run"]["status"] == "succeeded"
    assert doc["run"]["params"] == shown["params"]
    assert [s["name"] for s in doc["steps"]] == [s["name"] for s in shown["steps"]]
    for s in doc["steps"]:
        cli = step_of(shown, s["name"])
        assert (s["kind"], s["state"], s["attempts"], s["cache_key"]) == (
            cli["kind"],
            cli["state"],
            cli["attempts"],
            cli["cache_key"],
        )
    graph = client.get(f"/api/runs/{run_id}/graph").json()
    assert {n["id"]: n["state"] for n in graph["nodes"]} == states(shown)
    assert {(e["source"], e["target"]) for e in graph["edges"]} == cli_edges(
        ui_world, "classification"
    )
    assert all(e["input"] for e in graph["edges"])  # each edge names the input it feeds
    prefix = client.get(f"/runs/{run_id[:8]}")  # an id prefix, as the CLI takes
    assert prefix.status_code == 307 and prefix.headers["location"] == f"/runs/{run_id}"


def test_run_trigger_links_to_its_schedule_and_event(ui_world: Any, ui_client: Any) -> None:
    client = ui_client()
    tick = one(client.get(f"/runs/{ui_world.tick_run}").text, "dd", id="run-trigger")
    assert tick["data-kind"] == "schedule" and "every15" in tick["_text"]
    assert ui_world.TICK in tick["_text"]
    html = client.get(f"/runs/{ui_world.event_run}").text
    event = one(html, "dd", id="run-trigger")
    assert event["data-kind"] == "event" and "new-data" in event["_text"]
    assert one(html, "a", href=f"/events#event-{ui_world.event_id}")
    # the event's data became a run parameter, shown escaped, never as markup
    assert ui_world.EVIL not in html
    assert "&lt;script&gt;" in html


def test_a_running_run_shows_its_planned_steps_until_they_are_recorded(
    ui_world: Any, ui_client: Any, ui_stores: tuple[Any, Any]
) -> None:
    store = ui_stores[0]
    run_id = "live" + uuid.uuid4().hex[:8]
    target = f"{ui_world.project.path('broken.py').resolve()}:broken"
    store.create_run(run_id, "live-broken", target, {"n": 3}, "thread")  # no step ran yet
    client = ui_client()
    try:
        doc = client.get(f"/api/runs/{run_id}").json()
        assert doc["run"]["status"] == "running" and doc["run"]["ended_at"] is None
        planned = {"load": "pending", "explode": "pending", "report": "pending"}
        assert {s["name"]: s["state"] for s in doc["steps"]} == planned
        html = client.get(f"/runs/{run_id}").text
        assert one(html, "div", id="run-header")["data-status"] == "running"
        assert {r["data-step"]: r["data-state"] for r in elements(html, "tr", data_step="*")} == (
            planned
        )
        edges = {(e["source"], e["target"]) for e in graph_data(html)["edges"]}
        assert edges == cli_edges(ui_world, "broken.py:broken")
        panel = client.get(f"/runs/{run_id}/steps/explode", headers={"HX-Request": "true"})
        assert panel.status_code == 200
        assert one(panel.text, "div", id="step-detail")["data-state"] == "pending"
        assert "has not started yet" in one(panel.text, "div", id="step-explain")["_text"]
        assert client.get(f"/runs/{run_id}/steps/nosuchstep").status_code == 404
    finally:
        store.finish_run(run_id, "interrupted", "ended by the test")
    doc = client.get(f"/api/runs/{run_id}").json()
    assert doc["run"]["status"] == "interrupted" and doc["run"]["ended_at"] is not None


# -- a step's detail ------------------------------------------------------------------------
def test_failed_step_shows_its_log_error_and_traceback(ui_world: Any, ui_client: Any) -> None:
    client = ui_client()
    run_id = ui_world.failed["run_id"]
    shown = ui_world.orch.show(run_id)
    fragment = client.get(f"/runs/{run_id}/steps/explode", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text  # a fragment for the step panel
    error = one(fragment.text, "pre", id="step-error")["_text"]
    assert "Traceback (most recent call last)" in error
    assert "ValueError: boom: this step fails on purpose" in error
    assert 'broken.py", line' in error and "in explode" in error
    assert error.strip() == step_of(shown, "explode")["error"].strip()
    log = one(fragment.text, "pre", id="step-log")["_text"]
    assert "about to explode" in log
    assert one(fragment.text, "div", id="step-detail")["data-state"] == "failed"

    full = client.get(f"/runs/{run_id}/steps/explode")
    assert "<html" in full.text and one(full.text, "pre", id="step-error")

    ok = client.get(f"/runs/{run_id}/steps/load", headers={"HX-Request": "true"}).text
    assert elements(ok, "pre", id="step-error") == []
    assert "loaded rows for the broken pipeline" in one(ok, "pre", id="step-log")["_text"]

    api = client.get(f"/api/runs/{run_id}/steps/explode").json()
    assert api["state"] == "failed" and "ValueError: boom" in api["error"]
    assert api["why"] == "ValueError: boom: this step fails on purpose"
    log_doc = client.get(f"/api/runs/{run_id}/steps/explode/log").json()
    assert log_doc["log"] == step_of(shown, "explode")["log"]
    skipped = client.get(f"/api/runs/{run_id}/steps/report").json()
    assert skipped["state"] == "skipped" and "explode" in skipped["reason"]["summary"]


def test_step_detail_previews_a_dataframe_artifact(ui_world: Any, ui_client: Any) -> None:
    from sklearn.datasets import load_iris

    client = ui_client()
    run_id = ui_world.first["run_id"]
    shown = ui_world.orch.show(run_id)
    html = client.get(f"/runs/{run_id}/steps/features", headers={"HX-Request": "true"}).text
    df_hash = step_of(shown, "features")["inputs"]["df"]
    preview = elements(html, "table", data_artifact=df_hash)
    assert len(preview) == 1, "no preview of the step's DataFrame input"
    iris = load_iris(as_frame=True).frame
    body = preview[0]["_text"]
    for column in iris.columns:
        assert column in body
    api = client.get(f"/api/artifacts/{df_hash}").json()
    assert api["serializer"] == "arrow" and api["type"].endswith("DataFrame")
    rows = api["preview"]["rows"]
    assert len(rows) == 20 and api["preview"]["shape"] == [len(iris), len(iris.columns)]
    assert [float(v) for v in rows[0][:4]] == [float(v) for v in iris.iloc[0, :4]]
    inputs = client.get(f"/api/runs/{run_id}/steps/features").json()["inputs"]
    assert [(i["name"], i["hash"]) for i in inputs] == [("df", df_hash)]
    assert inputs[0]["size"] > 0 and inputs[0]["type"].endswith("DataFrame")


def test_step_explanation_says_why_it_ran_or_was_cached(ui_world: Any, ui_client: Any) -> None:
    client = ui_client()
    run_id, first = ui_world.second["run_id"], ui_world.first["run_id"]
    shown = states(ui_world.second)
    cached = next(n for n, s in shown.items() if s == "cached")
    ran = next(n for n, s in shown.items() if s == "succeeded")
    html = client.get(f"/runs/{run_id}/steps/{cached}", headers={"HX-Request": "true"}).text
    explain = one(html, "div", id="step-explain")["_text"]
    assert f"step '{cached}' of run {run_id} was cached." in explain
    assert one(html, "a", href=f"/runs/{first}")
    html = client.get(f"/runs/{run_id}/steps/{ran}", headers={"HX-Request": "true"}).text
    explain = one(html, "div", id="step-explain")["_text"]
    assert f"step '{ran}' of run {run_id} ran." in explain
    for line in ui_world.orch.explain(run_id, ran).splitlines()[1:]:
        if line.strip().startswith("- "):
            assert line.strip()[2:] in explain


# -- pipelines and starting runs ---------------------------------------------------------------
def test_pipelines_list_and_page(ui_world: Any, ui_client: Any) -> None:
    client = ui_client()
    doc = {p["name"]: p for p in client.get("/api/pipelines").json()["pipelines"]}
    res = ui_world.orch("runs", "--limit", "1000", "--json")
    counts = Counter(r["pipeline"] for r in res.json["runs"])
    assert {n: doc[n]["runs"] for n in counts} == dict(counts)
    assert counts["classification"] == 2 and counts["broken"] == 1 and counts["job"] >= 2
    assert doc["broken"]["last_run"]["id"] == ui_world.failed["run_id"]
    assert doc["broken"]["ref"].endswith("broken.py:broken")
    assert doc["regression"]["runs"] == 0  # a built-in pipeline never run here
    html = client.get("/pipelines").text
    assert {r["data-pipeline"] for r in elements(html, "tr", data_pipeline="*")} >= {
        "classification",
        "broken",
        "job",
        "regression",
    }

    page = client.get("/pipelines/classification").text
    form = one(page, "form", id="start-run")
    assert form["method"] == "post" and form["action"] == "/pipelines/classification/runs"
    from orchestrator.pipelines import classification

    for name, (_ann, default) in classification.param_specs.items():
        field = one(page, "input", name=name)
        assert field["value"] == (default if isinstance(default, str) else json.dumps(default))
    graph = graph_data(page)
    assert {(e["source"], e["target"]) for e in graph["edges"]} == cli_edges(
        ui_world, "classification"
    )
    runs = [r["data-run-id"] for r in elements(page, "tr", data_run_id="*")]
    assert runs == [ui_world.second["run_id"], ui_world.first["run_id"]]


def test_a_bad_parameter_is_named_next_to_its_field(ui_world: Any, ui_client: Any) -> None:
    client = ui_client(token=ui_world.TOKEN)
    before = cli_run_ids(ui_world)
    resp = client.post(
        "/pipelines/job/runs",
        data={"factor": "not-a-number", "scheduled_time": "x"},
        headers=ui_world.bearer,
    )
    assert resp.status_code == 422
    errors = elements(resp.text, "span", class_="field-error")
    assert [e["data-field"] for e in errors] == ["factor"]
    assert "factor" in errors[0]["_text"] and "int" in errors[0]["_text"]
    assert one(resp.text, "input", name="factor")["value"] == "not-a-number"  # kept as typed
    unknown = client.post("/pipelines/job/runs", data={"nope": "1"}, headers=ui_world.bearer)
    assert (
        unknown.status_code == 422 and "nope" in one(unknown.text, "span", id="form-error")["_text"]
    )
    assert cli_run_ids(ui_world) == before, "a run was started with a bad parameter"


def test_a_valid_submit_starts_a_run(ui_world: Any, ui_client: Any) -> None:
    client = ui_client(token=ui_world.TOKEN)
    before = set(cli_run_ids(ui_world))
    resp = client.post(
        "/pipelines/job/runs",
        data={"scheduled_time": "from the UI", "factor": "3"},
        headers=ui_world.bearer,
    )
    assert resp.status_code == 303, resp.text[:500]
    match = re.fullmatch(r"/runs/([A-Za-z0-9_-]+)", resp.headers["location"])
    assert match, resp.headers["location"]
    run_id = match.group(1)
    assert run_id not in before and run_id in cli_run_ids(ui_world)

    def finished() -> dict[str, Any] | None:
        doc = client.get(f"/api/runs/{run_id}").json()
        return doc if doc["run"]["status"] != "running" else None

    doc = wait_for(finished, f"run {run_id} to finish", timeout=120)
    assert doc["run"]["status"] == "succeeded", doc
    assert doc["run"]["trigger"]["kind"] == "ui"
    shown = ui_world.orch.show(run_id)
    assert shown["params"]["scheduled_time"] == "from the UI" and shown["params"]["factor"] == 3
    assert states(shown) == {"stamp": "succeeded", "size": "succeeded"}


# -- read-only mode and the token ---------------------------------------------------------------
def _post_routes(client: Any) -> list[str]:
    """Every POST route of the app (its own and its routers'), but sign-in and sign-out."""
    from orchestrator.ui import (
        auth,
        views_drift,
        views_models,
        views_ops,
        views_pipelines,
        views_runs,
    )

    routers = (auth, views_drift, views_models, views_ops, views_pipelines, views_runs)
    routes = [*client.app.routes, *(r for m in routers for r in m.router.routes)]
    return sorted(
        {
            route.path
            for route in routes
            if "POST" in (getattr(route, "methods", None) or set())
            and route.path not in ("/login", "/logout")
        }
    )


def _fill(path: str) -> str:
    return (
        path.replace("{name}", "every15" if "schedules" in path else MODEL)
        .replace("{version}", "1")
        .replace("{alias}", "champion")
        .replace("/pipelines/every15", "/pipelines/job")
    )


def _state(ui_world: Any, ui_stores: tuple[Any, Any]) -> tuple[Any, ...]:
    store = ui_stores[0]
    return (cli_models(ui_world), store.schedule_state("every15"), cli_run_ids(ui_world))


@pytest.mark.parametrize("mode", ["no-token", "not-signed-in", "wrong-token"])
def test_every_change_is_refused_without_the_token(
    ui_world: Any, ui_client: Any, ui_stores: tuple[Any, Any], mode: str
) -> None:
    client = ui_client(token=None if mode == "no-token" else ui_world.TOKEN)
    headers = {"Authorization": "Bearer wrong-token"} if mode == "wrong-token" else {}
    if mode == "wrong-token":
        client.cookies.set("orch_ui_session", "forged")
    routes = _post_routes(client)
    assert {
        "/pipelines/{name}/runs",
        "/models/{name}/versions/{version}/promote",
        "/models/{name}/aliases",
        "/models/{name}/aliases/{alias}/delete",
        "/schedules/{name}/pause",
        "/schedules/{name}/resume",
    } <= set(routes)
    before = _state(ui_world, ui_stores)
    for path in routes:
        url = _fill(path)
        resp = client.post(url, data={"scheduled_time": "x"}, headers=headers)
        assert resp.status_code == 403, (url, resp.status_code)
        assert "/login" in resp.text
        api = client.post("/api" + url, headers=headers)
        assert api.status_code in (403, 404, 405)
    assert _state(ui_world, ui_stores) == before
    html = client.get("/runs").text
    assert one(html, "span", data_auth="read-only")


def test_sign_in_sets_a_cookie_that_allows_changes(
    ui_world: Any, ui_client: Any, ui_stores: tuple[Any, Any]
) -> None:
    client = ui_client(token=ui_world.TOKEN)
    form = one(client.get("/login").text, "form", id="login-form")
    assert form["method"] == "post" and form["action"] == "/login"
    wrong = client.post("/login", data={"token": "nope"})
    assert wrong.status_code == 403 and "orch_ui_session" not in client.cookies
    ok = client.post("/login", data={"token": ui_world.TOKEN, "next": "//evil.example/x"})
    assert ok.status_code == 303 and ok.headers["location"] == "/runs"
    cookie = client.cookies.get("orch_ui_session")
    assert cookie and ui_world.TOKEN not in cookie
    assert "httponly" in ok.headers["set-cookie"].lower()
    assert "samesite=strict" in ok.headers["set-cookie"].lower()
    assert one(client.get("/runs").text, "span", data_auth="signed-in")
    store = ui_stores[0]
    try:
        assert client.post("/schedules/every15/pause").status_code == 303
        assert store.schedule_state("every15")["paused"] is True
    finally:
        store.set_schedule_state("every15", paused=False)
    client.post("/logout")
    assert client.post("/schedules/every15/pause").status_code == 403
    assert store.schedule_state("every15")["paused"] is False

    readonly = ui_client()
    refused = readonly.post("/login", data={"token": ui_world.TOKEN})
    assert refused.status_code == 403 and "read-only" in refused.text


# -- models -------------------------------------------------------------------------------------
def test_model_page_shows_versions_metrics_and_lineage(ui_world: Any, ui_client: Any) -> None:
    client = ui_client(token=ui_world.TOKEN)
    stages = cli_models(ui_world)
    assert stages == {1: "archived", 2: "production"}
    res = ui_world.orch("models", MODEL, "--json")
    cli = {m["version"]: m for m in res.json["models"]}
    doc = client.get(f"/api/models/{MODEL}").json()
    assert doc["production"] == 2
    assert {v["version"]: v["stage"] for v in doc["versions"]} == stages
    for v in doc["versions"]:
        assert v["metrics"] == cli[v["version"]]["metrics"]
        assert v["run_id"] == cli[v["version"]]["run_id"]
        assert v["data_hash"] == cli[v["version"]]["data_hash"]
    assert [m["name"] for m in client.get("/api/models").json()["models"]] == [MODEL]

    html = client.get(f"/models/{MODEL}", headers=ui_world.bearer).text
    assert {r["data-version"]: r["data-stage"] for r in elements(html, "tr", data_version="*")} == {
        str(v): s for v, s in stages.items()
    }
    assert [
        b["data-promote-version"] for b in elements(html, "button", data_promote_version="*")
    ] == ["1"]
    promote_form = one(html, "form", action=f"/models/{MODEL}/versions/1/promote")
    assert promote_form["method"] == "post"
    assert MODEL in promote_form["data-confirm"] and "1" in promote_form["data-confirm"]
    assert one(html, "canvas", id="metric-chart")
    chart = json.loads(one(html, "script", id="chart-data")["_text"])
    assert chart["labels"] == ["v1", "v2"]
    assert chart["metrics"]["accuracy"] == [
        cli[1]["metrics"]["accuracy"],
        cli[2]["metrics"]["accuracy"],
    ]
    metrics = elements(html, "th", data_metric="*")
    assert {m["data-metric"] for m in metrics} == set(cli[1]["metrics"])
    rows = {
        r["data-metrics-version"]: r["_text"]
        for r in elements(html, "tr", data_metrics_version="*")
    }
    assert f"{cli[1]['metrics']['accuracy']:.4f}" in rows["1"]
    assert f"{cli[2]['metrics']['accuracy']:.4f}" in rows["2"]
    readonly = ui_client().get(f"/models/{MODEL}").text
    assert "disabled" in one(readonly, "button", data_promote_version="1")
    step_href = f"/runs/{cli[1]['run_id']}/steps/{cli[1].get('step') or 'deploy'}"
    assert one(html, "a", data_lineage="step", href=step_href)
    assert client.get(f"/models/{MODEL}", params={"metric": "nosuch"}).status_code == 422
    assert client.get(f"/models/{MODEL}", params={"metric": "f1_macro"}).status_code == 200


def test_promote_and_roll_back_change_production(ui_world: Any, ui_client: Any) -> None:
    client = ui_client(token=ui_world.TOKEN)
    assert cli_models(ui_world) == {1: "archived", 2: "production"}
    versions = client.get(f"/api/models/{MODEL}").json()["versions"]
    registered = {v["version"]: v["reason"] for v in versions}
    try:
        back = client.post(f"/models/{MODEL}/versions/1/promote", headers=ui_world.bearer)
        assert back.status_code == 303 and back.headers["location"] == f"/models/{MODEL}"
        assert cli_models(ui_world) == {1: "production", 2: "archived"}
        doc = client.get(f"/api/models/{MODEL}").json()
        newest = doc["events"][0]  # the audit trail names the rollback; reasons are kept
        assert (newest["version"], newest["change"], newest["actor"]) == (
            1,
            "archived -> production",
            "ui",
        )
        assert newest["reason"] == "rolled back from v2 in the web UI"
        assert {v["version"]: v["reason"] for v in doc["versions"]} == registered
        html = client.get(f"/models/{MODEL}").text
        assert [
            b["data-promote-version"] for b in elements(html, "button", data_promote_version="*")
        ] == ["2"]
        assert (
            client.post(f"/models/{MODEL}/versions/9/promote", headers=ui_world.bearer).status_code
            == 404
        )
        assert cli_models(ui_world) == {1: "production", 2: "archived"}
    finally:
        again = client.post(f"/models/{MODEL}/versions/2/promote", headers=ui_world.bearer)
    assert again.status_code == 303
    assert cli_models(ui_world) == {1: "archived", 2: "production"}


def test_model_page_shows_the_audit_trail_and_lineage_of_each_change(
    ui_world: Any, ui_client: Any
) -> None:
    client = ui_client(token=ui_world.TOKEN)
    res = client.post(
        f"/models/{MODEL}/versions/1/promote",
        data={"reason": "v1 holds up on <new> data"},
        headers=ui_world.bearer,
    )
    assert res.status_code == 303
    try:
        html = client.get(f"/models/{MODEL}").text
        rows = elements(html, "tr", data_event_kind="*")
        newest = rows[0]
        assert (newest["data-event-version"], newest["data-event-actor"]) == ("1", "ui")
        assert "archived -> production" in newest["_text"]
        assert "v1 holds up on <new> data" in newest["_text"]  # escaped, shown as typed
        assert "<new>" not in html.replace("&lt;new&gt;", "")
        assert "replaced by v1: v1 holds up" in rows[1]["_text"]
        kinds = [(r["data-event-kind"], r["data-event-actor"]) for r in rows]
        assert kinds.count(("registered", "deploy")) == 2  # both versions, by the deploy step
        deploy_links = elements(html, "a", href=f"/runs/{ui_world.first['run_id']}/steps/deploy")
        assert deploy_links  # the step that registered v1, from its version row and its events
        assert elements(html, "a", data_lineage="run", href=f"/runs/{ui_world.first['run_id']}")
        assert one(html, "span", id="promotion-reason")["_text"] == "(v1 holds up on <new> data)"
    finally:
        client.post(f"/models/{MODEL}/versions/2/promote", headers=ui_world.bearer)
    assert cli_models(ui_world) == {1: "archived", 2: "production"}


def test_aliases_set_and_removed_in_the_ui_are_recorded(ui_world: Any, ui_client: Any) -> None:
    client = ui_client(token=ui_world.TOKEN)
    client.headers.update(ui_world.bearer)
    form = {"alias": "staging", "version": "1", "reason": "try it on shadow traffic"}
    assert client.post(f"/models/{MODEL}/aliases", data=form).status_code == 303
    try:
        html = client.get(f"/models/{MODEL}").text
        assert one(html, "span", data_alias="staging")["data-alias-version"] == "1"
        assert one(html, "span", data_version_alias="staging")
        assert one(html, "button", data_delete_alias="staging")
        doc = client.get(f"/api/models/{MODEL}").json()
        assert doc["aliases"]["staging"] == 1
        assert doc["events"][0]["change"] == "alias staging: v1 set"
        assert doc["events"][0]["reason"] == "try it on shadow traffic"
        bad = client.post(f"/models/{MODEL}/aliases", data={"alias": "no good", "version": "1"})
        assert bad.status_code == 422
        assert "alias 'no good' is not a valid alias name" in unescape(bad.text)
        missing = client.post(f"/models/{MODEL}/aliases", data={"alias": "x", "version": "9"})
        assert missing.status_code == 404
        assert f"no version 9 of model '{MODEL}'" in unescape(missing.text)
        readonly = ui_client().post(f"/models/{MODEL}/aliases", data=form)
        assert readonly.status_code == 403
        assert "disabled" in one(ui_client().get(f"/models/{MODEL}").text, "button",
                                 id="alias-submit")  # fmt: skip
    finally:
        gone = client.post(f"/models/{MODEL}/aliases/staging/delete")
    assert gone.status_code == 303
    doc = client.get(f"/api/models/{MODEL}").json()
    assert "staging" not in doc["aliases"]
    assert doc["events"][0]["change"] == "alias staging: v1 removed"
    assert client.post(f"/models/{MODEL}/aliases/staging/delete").status_code == 404


def test_model_page_says_which_version_a_live_server_answers_with(
    ui_world: Any, ui_client: Any, ui_stores: tuple[Any, Any]
) -> None:
    import datetime as dt

    from sqlalchemy import update

    from orchestrator.store import schema as t
    from orchestrator.store.model_servers import ModelServers

    servers = ModelServers(ui_stores[0])
    servers.beat("live-one", MODEL, "champion", 2, "http://127.0.0.1:8123")
    servers.beat("dead-one", MODEL, "production", 1, "http://127.0.0.1:8124")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    with ui_stores[0].tx() as conn:
        conn.execute(
            update(t.model_servers)
            .where(t.model_servers.c.id == "dead-one")
            .values(heartbeat_at=old)
        )
    try:
        html = ui_client().get(f"/models/{MODEL}").text
        [srv] = elements(html, "span", data_server_version="*")
        assert (srv["data-server-version"], srv["data-server-selector"]) == ("2", "champion")
        assert "http://127.0.0.1:8123 answers with v2" in srv["_text"]
        assert "8124" not in html  # a server silent for minutes is not serving
        doc = ui_client().get(f"/api/models/{MODEL}").json()
        assert [(s["url"], s["version"]) for s in doc["servers"]] == [("http://127.0.0.1:8123", 2)]
    finally:
        servers.gone("live-one")
        servers.gone("dead-one")
    html = ui_client().get(f"/models/{MODEL}").text
    assert elements(html, "span", data_server_version="*") == []
    assert f"no running orch serve {MODEL}" in one(html, "div", id="model-servers")["_text"]


def test_metric_chart_has_a_point_per_version_and_marks_other_data(
    ui_world: Any, ui_client: Any
) -> None:
    html = ui_client().get(f"/models/{MODEL}").text
    chart = json.loads(one(html, "script", id="chart-data")["_text"])
    versions = ui_client().get(f"/api/models/{MODEL}").json()["versions"]
    hashes = [v["data_hash"] for v in versions]
    assert chart["data"] == [(h or "")[:12] for h in hashes]
    assert chart["changed"] == [False] + [hashes[i] != hashes[i - 1] for i in range(1, len(hashes))]
    note = one(html, "p", id="data-changes")["_text"]
    if any(chart["changed"]):
        assert "Evaluated on different data" in note
    else:
        assert "All versions were evaluated on the same data." in note
    from orchestrator.ui.views_models import chart_of

    class V:
        def __init__(self, n: int, h: str | None, r2: float) -> None:
            self.version, self.data_hash, self.metrics = n, h, {"r2": r2}

    made = chart_of([V(1, "a" * 16, 0.5), V(2, "a" * 16, 0.5), V(3, "b" * 16, 0.7)], ["r2"], "r2")
    assert made["changed"] == [False, False, True] and made["metrics"]["r2"] == [0.5, 0.5, 0.7]
    assert made["data"] == ["a" * 12, "a" * 12, "b" * 12]
    js = (Path(__file__).resolve().parents[2] / "orchestrator/ui/static/orch.js").read_text()
    metric_js = js[js.index("function metricDataset") : js.index("function metricChart")]
    assert "tension: 0," in metric_js and "tension: 0.15" not in js  # straight, never a spline


def test_run_page_links_the_versions_it_registered_and_has_a_timeline(
    ui_world: Any, ui_client: Any, ui_stores: tuple[Any, Any]
) -> None:
    run_id = ui_world.first["run_id"]
    html = ui_client().get(f"/runs/{run_id}").text
    link = one(html, "a", data_run_model=MODEL)
    assert link["href"] == f"/models/{MODEL}" and link["data-run-model-version"] == "1"
    started = [s["name"] for s in ui_stores[0].step_runs(run_id) if s.get("started_at")]
    rows = elements(html, "div", data_timeline_step="*")
    assert sorted(r["data-timeline-step"] for r in rows) == sorted(started)
    assert len(started) == 6
    span = float(one(html, "section", id="timeline")["data-span"])
    for r in rows:
        start, end = float(r["data-start"]), float(r["data-end"])
        assert 0 <= start <= end <= span + 1e-6, r
    by_name = {r["data-timeline-step"]: r for r in rows}
    assert float(by_name["ingest"]["data-start"]) <= float(by_name["deploy"]["data-start"])
    broken = ui_client().get(f"/runs/{ui_world.failed['run_id']}").text
    assert elements(broken, "a", data_run_model="*") == []  # it registered nothing


# -- schedules and events -------------------------------------------------------------------------
def test_schedules_show_ticks_and_the_runs_they_started(ui_world: Any, ui_client: Any) -> None:
    doc = {s["name"]: s for s in ui_client().get("/api/schedules").json()["schedules"]}
    every15 = doc["every15"]
    assert every15["kind"] == "schedule" and every15["defined"] is False
    assert every15["cursor"] == ui_world.TICK and every15["paused"] is False
    assert [t["scheduled_time"] for t in every15["ticks"]] == [ui_world.TICK]
    assert every15["ticks"][0]["run_id"] == ui_world.tick_run
    assert every15["ticks"][0]["launch"] == "done"  # the daemon's launch of it ended
    assert ui_world.tick_run in [r["id"] for r in every15["runs"]]
    assert doc["on-data"]["kind"] == "trigger"
    assert [r["id"] for r in doc["on-data"]["runs"]] == [ui_world.event_run]

    from orchestrator.triggers.daemon import load_definitions

    defs = load_definitions([ui_world.project.path("flow.py")])
    client = ui_client(definitions=defs)
    doc = {s["name"]: s for s in client.get("/api/schedules").json()["schedules"]}
    assert doc["every15"]["defined"] is True and len(doc["every15"]["next_fires"]) == 3
    minutes = {t[14:16] for t in doc["every15"]["next_fires"]}
    assert minutes <= {"00", "15", "30", "45"}
    html = client.get("/schedules").text
    card = one(html, "div", data_schedule="every15")
    assert card["data-paused"] == "false" and "*/15 * * * *" in card["_text"]
    assert elements(html, "a", href=f"/runs/{ui_world.tick_run}")  # its tick and its run
    assert one(html, "form", action="/schedules/every15/pause")


def test_pause_and_resume_change_the_schedule_state(
    ui_world: Any, ui_client: Any, ui_stores: tuple[Any, Any]
) -> None:
    client = ui_client(token=ui_world.TOKEN)

    def cli_paused() -> bool:
        res = ui_world.orch("schedules", "flow.py", "--json")
        assert res.code == 0, res.describe()
        return next(s["paused"] for s in res.json["schedules"] if s["name"] == "every15")

    assert cli_paused() is False
    try:
        resp = client.post("/schedules/every15/pause", headers=ui_world.bearer)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/schedules")
        assert cli_paused() is True
        html = client.get("/schedules").text
        assert one(html, "div", data_schedule="every15")["data-paused"] == "true"
        assert one(html, "form", action="/schedules/every15/resume")
    finally:
        resp = client.post("/schedules/every15/resume", headers=ui_world.bearer)
    assert resp.status_code == 303
    assert cli_paused() is False
    missing = client.post("/schedules/nosuchschedule/pause", headers=ui_world.bearer)
    assert missing.status_code == 404 and "nosuchschedule" in missing.text


def test_events_page_links_each_event_to_its_run(ui_world: Any, ui_client: Any) -> None:
    client = ui_client()
    events = client.get("/api/events").json()["events"]
    ev = next(e for e in events if e["id"] == ui_world.event_id)
    assert (ev["name"], ev["status"], ev["run_id"]) == ("new-data", "started", ui_world.event_run)
    assert ev["data"] == {"scheduled_time": ui_world.EVIL}
    html = client.get("/events").text
    row = one(html, "tr", id=f"event-{ui_world.event_id}")
    assert row["data-status"] == "started"
    assert one(html, "a", href=f"/runs/{ui_world.event_run}")
    assert ui_world.EVIL not in html and "&lt;script&gt;" in html
    assert client.get("/api/events", params={"limit": 0}).status_code == 422


# -- drift ---------------------------------------------------------------------------------------
def test_drift_checks_and_a_report_per_feature(
    ui_world: Any, ui_client: Any, ui_stores: tuple[Any, Any]
) -> None:
    from sklearn.datasets import load_iris

    from orchestrator.steps import drift_report
    from orchestrator.store.metadata import Batch, now

    store, artifacts = ui_stores
    iris = load_iris(as_frame=True).frame
    batch = iris.copy()
    batch["petal length (cm)"] = batch["petal length (cm)"] * 3 + 5  # drifted on purpose
    report = drift_report(iris, batch)
    ref = artifacts.put(report.model_dump(mode="json"), "json")
    row = ref.to_json() | {"run_id": None, "step": None, "created_at": now()}
    store.write(Batch(artifacts={ref.hash: row}))
    check_id = store.record_check(
        monitor="iris-drift",
        kind="drift",
        model=MODEL,
        version=2,
        source="batch.csv",
        position=None,
        rows=len(batch),
        drifted=report.drifted,
        value=max(f.psi for f in report.features),
        report_hash=ref.hash,
        summary=report.summary(),
    )
    client = ui_client()
    checks = client.get("/api/drift").json()["checks"]
    assert check_id in [c["id"] for c in checks]
    listed = one(client.get("/drift").text, "tr", data_check_id=str(check_id))
    assert listed["data-drifted"] == "true"
    only = client.get("/api/drift", params={"monitor": "nosuchmonitor"}).json()["checks"]
    assert only == []
    page = client.get("/drift", params={"monitor": "iris-drift"}).text
    history = json.loads(one(page, "script", id="history-data")["_text"])
    assert history["ids"][-1] == check_id and history["fired"][-1] is True
    assert history["values"][-1] == pytest.approx(max(f.psi for f in report.features))
    assert one(page, "canvas", id="history-chart") and "/static/chart.umd.min.js" in page

    html = client.get(f"/drift/{check_id}").text
    assert one(html, "canvas", id="psi-chart") and one(html, "canvas", id="ks-chart")
    rows = {r["data-feature"]: r["data-drifted"] for r in elements(html, "tr", data_feature="*")}
    assert rows == {f.feature: str(f.drifted).lower() for f in report.features}
    assert rows["petal length (cm)"] == "true"
    chart = json.loads(one(html, "script", id="drift-data")["_text"])
    assert chart["labels"] == [f.feature for f in report.features]
    assert chart["psi"] == pytest.approx([f.psi for f in report.features])
    assert chart["psi_threshold"] == report.thresholds["psi"]
    api = client.get(f"/api/drift/{check_id}").json()
    assert api["report"]["drifted_features"] == report.drifted_features


# -- static files and the real command ------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["htmx.min.js", "cytoscape.min.js", "cytoscape-dagre.min.js", "chart.umd.min.js", "orch.js"],
)
def test_vendored_static_files_are_served(ui_client: Any, name: str) -> None:
    resp = ui_client().get(f"/static/{name}")
    assert resp.status_code == 200 and len(resp.content) > 1000
    assert "javascript" in resp.headers["content-type"]
    import orchestrator.ui

    vendored = (Path(orchestrator.ui.__file__).parent / "static" / "VENDORED.md").read_text()
    if name != "orch.js":
        assert f"`{name}`" in vendored


def test_orch_ui_serves_on_a_free_port_and_stops_on_sigterm(ui_world: Any) -> None:
    log = ui_world.home.parent / "orch-ui-cmd.log"
    proc = ui_world.orch.popen("ui", "--port", "0", "--token", ui_world.TOKEN, log=log)
    out = log.with_suffix(".out")
    try:

        def first_line() -> str | None:
            if proc.poll() is not None:
                raise AssertionError(
                    f"orch ui exited {proc.returncode}: {log.with_suffix('.err').read_text()}"
                )
            text = out.read_text()
            return text.partition("\n")[0] if "\n" in text else None

        line = wait_for(first_line, "orch ui to print its address", timeout=60)
        match = re.fullmatch(r"orch ui: serving on (http://127\.0\.0\.1:(\d+))", line)
        assert match and int(match.group(2)) > 0, line
        with httpx.Client(base_url=match.group(1), timeout=30) as http:
            runs = http.get("/api/runs").json()
            assert {r["id"] for r in runs["runs"]} >= {ui_world.failed["run_id"]}
            page = http.get(f"/runs/{ui_world.failed['run_id']}")
            assert page.status_code == 200 and "explode" in page.text
            assert http.post("/schedules/every15/pause").status_code == 403
            signed = http.post("/login", data={"token": ui_world.TOKEN})
            assert signed.status_code == 303 and "orch_ui_session" in http.cookies
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert code == 0, log.with_suffix(".err").read_text()
    assert out.read_text().count("\n") == 1  # exactly one line on stdout
    assert "Traceback" not in log.with_suffix(".err").read_text()


def test_model_page_shows_the_newest_versions_and_production_unless_all(
    ui_client: Any, ui_stores: tuple[Any, Any]
) -> None:
    from sqlalchemy import delete

    from orchestrator.store import schema
    from orchestrator.store.registry import StoreRegistry

    store, artifacts = ui_stores
    registry = StoreRegistry(store, artifacts)
    for i in range(55):
        registry.register(
            "many-versions", artifact_hash=f"{i:032x}", metrics={"accuracy": i / 100},
            run_id=None, step=None, params={"i": i}, data_hash=None,
        )  # fmt: skip
    registry.promote("many-versions", 2, "an old favourite")
    try:
        client = ui_client()
        html = client.get("/models/many-versions").text
        shown = [int(r["data-version"]) for r in elements(html, "tr", data_version="*")]
        assert shown == [*range(55, 5, -1), 2]  # the newest 50, then production
        assert "show all 55 versions" in html
        chart = json.loads(one(html, "script", id="chart-data")["_text"])
        assert len(chart["labels"]) == 55  # the chart keeps every version
        html = client.get("/models/many-versions", params={"all": "true"}).text
        assert len(elements(html, "tr", data_version="*")) == 55
        assert "show all" not in html
    finally:  # the other tests of this session see only their own models
        with store.tx() as conn:
            conn.execute(
                delete(schema.model_versions).where(schema.model_versions.c.name == "many-versions")
            )
