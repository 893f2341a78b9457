"""The web UI in a real browser: Debian's chromium driven by playwright, against the real
`orch ui` serving a project made by the real `orch run` CLI.

Session fixtures (one set per pytest-xdist worker, each in its own temporary folder):

* `project`: a user project with real runs, made through `python -m orchestrator run`:
  the built-in `classification` twice (C=1.0, then C=10.0, so `iris-classifier` has two
  versions; the second scores better and becomes production, the first is archived) and
  one failed run of `broken.py:broken`, whose middle step raises;
* `ui_server`: `orch ui --port 0 --token TOKEN` in that project (read-write after sign-in);
* `readonly_server`: a second `orch ui --port 0` on the same store, without a token;
* `browser`: headless chromium launched from its Debian path (`executable_path`), never a
  downloaded build; scripts/install-browser.sh apt-installs it when it is missing.

Each test gets a fresh browser context (no cookies) and fails on any uncaught JavaScript
error of the pages it visits. Every page visited is saved as a full-page PNG in
`test-artifacts/ui/` at the repository root. The expected states, logs and errors come
from the CLI (`orch show --json`, `orch graph --format dot`, `orch models --json`).
"""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from orchtest import BROKEN, Orch, Project, states, step_of, wait_for  # noqa: E402

SHOTS = ROOT / "test-artifacts" / "ui"
TOKEN = "browser-test-token-5f1c"
MODEL = "iris-classifier"
RUN_TIMEOUT = 240.0  # a run started from the UI, on a busy 2-core machine


try:
    from playwright.sync_api import Browser, Dialog, Page
except ImportError:  # reported by the `browser` fixture (conftest.py), with the fix
    pass


# -- fixtures ---------------------------------------------------------------------------
@dataclasses.dataclass
class UIProject:
    orch: Orch
    project: Project
    first: dict[str, Any]  # `run --json` of classification, C=1.0
    second: dict[str, Any]  # classification, C=10.0
    failed: dict[str, Any]  # broken.py:broken


@dataclasses.dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> UIProject:
    base = tmp_path_factory.mktemp("ui")
    proj = Project(base / "proj")
    orch = Orch(base / "orch-home", proj.root)
    first = orch.run("classification", "--param", "C=1.0")
    second = orch.run("classification", "--param", "C=10.0")
    proj.write("broken.py", BROKEN)
    failed = orch.run("broken.py:broken", code=1)
    for doc in (first, second):
        assert doc["status"] == "succeeded", doc
    assert states(failed) == {"load": "succeeded", "explode": "failed", "report": "skipped"}
    return UIProject(orch, proj, first, second, failed)


def _start_ui(project: UIProject, name: str, *args: str) -> Iterator[Server]:
    log = project.orch.home.parent / f"{name}.log"
    proc = project.orch.popen("ui", "--host", "127.0.0.1", "--port", "0", *args, log=log)
    out = log.with_suffix(".out")

    def serving() -> str | None:
        if proc.poll() is not None:
            raise AssertionError(
                f"orch ui exited {proc.returncode}:\n{out.read_text()}\n"
                f"{log.with_suffix('.err').read_text()}"
            )
        first = out.read_text().partition("\n")
        return first[0] if first[1] else None

    line = wait_for(serving, "orch ui to print its address", timeout=60)
    match = re.fullmatch(r"orch ui: serving on (http://127\.0\.0\.1:\d+)", line)
    assert match, f"unexpected first line of orch ui: {line!r}"
    try:
        yield Server(match.group(1), proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("orch ui did not stop within 20 s of SIGTERM") from None


@pytest.fixture(scope="session")
def ui_server(project: UIProject) -> Iterator[Server]:
    yield from _start_ui(project, "ui-token", "--token", TOKEN)


@pytest.fixture(scope="session")
def readonly_server(project: UIProject) -> Iterator[Server]:
    yield from _start_ui(project, "ui-readonly")


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(f"{pg.url}: {exc}"))
    pg.test_name = request.node.name  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()
    assert not errors, "uncaught JavaScript errors:\n" + "\n".join(errors)


# -- helpers ----------------------------------------------------------------------------
def shot(page: Page, label: str) -> None:
    """Save the page as a full-page PNG: test-artifacts/ui/<test>--<label>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", f"{page.test_name}--{label}")  # type: ignore[attr-defined]
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def visit(page: Page, url: str, label: str) -> None:
    resp = page.goto(url)
    assert resp is not None and resp.ok, f"GET {url}: {resp and resp.status}"
    page.wait_for_load_state("networkidle")
    shot(page, label)


def sign_in(page: Page, server: Server) -> None:
    visit(page, f"{server.url}/login", "login")
    page.locator("form input[name='token']").fill(TOKEN)
    page.locator("form [type='submit']").first.click()
    page.wait_for_load_state("networkidle")
    assert page.context.cookies(), f"signing in set no cookie:\n{page.content()}"


def graph_nodes(page: Page) -> dict[str, str]:
    """`{step: state}` of the Cytoscape graph on a run page, once it has nodes."""
    page.wait_for_function("() => window.orchGraph && window.orchGraph.nodes().length > 0")
    nodes = page.evaluate(
        "() => window.orchGraph.nodes().map(n => [n.data('id'), n.data('state')])"
    )
    return dict(nodes)


def graph_edges(page: Page) -> set[tuple[str, str]]:
    edges = page.evaluate(
        "() => window.orchGraph.edges().map(e => [e.data('source'), e.data('target')])"
    )
    return {(s, t) for s, t in edges}


def cli_edges(orch: Orch, target: str) -> set[tuple[str, str]]:
    res = orch("graph", target, "--format", "dot")
    assert res.code == 0, res.describe()
    return set(re.findall(r'^\s*"([^"]+)" -> "([^"]+)";', res.out, re.M))


def table_states(page: Page) -> dict[str, str]:
    rows = page.locator("tr[data-step]")
    return {
        rows.nth(i).get_attribute("data-step") or "": rows.nth(i).get_attribute("data-state") or ""
        for i in range(rows.count())
    }


def click_node(page: Page, step: str) -> None:
    """Click a node of the graph with the mouse, where Cytoscape drew it."""
    page.locator("#dag").scroll_into_view_if_needed()
    box = page.locator("#dag").bounding_box()
    assert box is not None, "#dag is not displayed"
    page.wait_for_function(
        "(s) => window.orchGraph && window.orchGraph.getElementById(s).length === 1", arg=step
    )
    pos = page.evaluate(
        "(s) => { const p = window.orchGraph.getElementById(s).renderedPosition();"
        " return [p.x, p.y]; }",
        step,
    )
    page.mouse.click(box["x"] + pos[0], box["y"] + pos[1])


def log_lines(doc: dict[str, Any], step: str) -> list[str]:
    """The messages of a step's log lines (without the time stamp and level)."""
    log = step_of(doc, step).get("log") or ""
    return [re.sub(r"^\S+ \[\w+\] ", "", ln).strip() for ln in log.splitlines() if ln.strip()]


def models(orch: Orch) -> dict[int, str]:
    """`{version: stage}` of iris-classifier, from `orch models --json`."""
    res = orch("models", MODEL, "--json")
    assert res.code == 0, res.describe()
    return {m["version"]: m["stage"] for m in res.json["models"] if m["name"] == MODEL}


def run_ids(orch: Orch) -> set[str]:
    res = orch("runs", "--limit", "1000", "--json")
    assert res.code == 0, res.describe()
    return {r["run_id"] for r in res.json["runs"]}


# -- the runs list and run pages ----------------------------------------------------------
def test_runs_list_shows_each_run_with_its_status(
    page: Page, ui_server: Server, project: UIProject
) -> None:
    visit(page, f"{ui_server.url}/runs", "runs")
    expected = {
        project.first["run_id"]: "succeeded",
        project.second["run_id"]: "succeeded",
        project.failed["run_id"]: "failed",
    }
    for run_id, status in expected.items():
        row = page.locator(f"tr[data-run-id='{run_id}']")
        assert row.count() == 1, f"run {run_id} is not listed once on /runs"
        assert row.get_attribute("data-status") == status
        assert row.locator(f"a[href='/runs/{run_id}']").count() >= 1

    visit(page, f"{ui_server.url}/runs?status=failed", "runs-failed")
    listed = {
        r.get_attribute("data-run-id"): r.get_attribute("data-status")
        for r in page.locator("tr[data-run-id]").all()
    }
    assert project.failed["run_id"] in listed
    assert set(listed.values()) == {"failed"}, listed

    visit(page, f"{ui_server.url}/runs?pipeline=broken", "runs-broken")
    ids = {r.get_attribute("data-run-id") for r in page.locator("tr[data-run-id]").all()}
    assert ids == {project.failed["run_id"]}

    page.locator(f"a[href='/runs/{project.failed['run_id']}']").first.click()
    page.wait_for_url(f"**/runs/{project.failed['run_id']}")
    page.wait_for_load_state("networkidle")
    shot(page, "run-from-list")


def test_run_page_graph_has_every_step_in_its_state(
    page: Page, ui_server: Server, project: UIProject
) -> None:
    run_id = project.second["run_id"]
    shown = project.orch.show(run_id)
    expected = states(shown)
    assert "cached" in expected.values() and "succeeded" in expected.values(), expected
    visit(page, f"{ui_server.url}/runs/{run_id}", "run-mixed")
    assert graph_nodes(page) == expected
    assert graph_edges(page) == cli_edges(project.orch, "classification")
    assert table_states(page) == expected


def test_clicking_a_node_or_a_row_shows_the_step_log(
    page: Page, ui_server: Server, project: UIProject
) -> None:
    run_id = project.first["run_id"]
    shown = project.orch.show(run_id)
    visit(page, f"{ui_server.url}/runs/{run_id}", "run")

    click_node(page, "train")
    panel_log = page.locator("#step-panel #step-log")
    for line in log_lines(shown, "train"):
        panel_log.filter(has_text=line).wait_for()
    shot(page, "train-log")

    page.locator("tr[data-step='evaluate']").click()
    lines = log_lines(shown, "evaluate")
    assert lines, step_of(shown, "evaluate")
    page.locator("#step-panel #step-log").filter(has_text=lines[0]).wait_for()
    assert "trained model" not in page.locator("#step-log").inner_text()
    shot(page, "evaluate-log")


def test_failed_run_shows_the_error_and_traceback(
    page: Page, ui_server: Server, project: UIProject
) -> None:
    run_id = project.failed["run_id"]
    visit(page, f"{ui_server.url}/runs/{run_id}", "run-failed")
    assert graph_nodes(page) == states(project.failed)
    assert graph_edges(page) == {("load", "explode"), ("explode", "report")}

    page.locator("tr[data-step='explode']").click()
    error = page.locator("#step-panel #step-error")
    error.filter(has_text="ValueError: boom: this step fails on purpose").wait_for()
    text = error.inner_text()
    assert "Traceback (most recent call last)" in text
    assert 'broken.py", line' in text and "in explode" in text
    page.locator("#step-log").filter(has_text="about to explode").wait_for()
    shot(page, "explode-error")

    click_node(page, "load")
    page.locator("#step-log").filter(has_text="loaded rows for the broken pipeline").wait_for()
    assert page.locator("#step-panel #step-error").count() == 0
    shot(page, "load-log")


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
def ticker(started: str = ""):
    ticking(started=started)
"""


def _ticks(page: Page) -> int:
    """The highest `tick N` line in the open step panel's log (-1: none yet)."""
    text = page.locator("#step-panel #step-log").inner_text()
    return max((int(n) for n in re.findall(r"^tick (\d+)$", text, re.M)), default=-1)


def test_an_open_step_panel_shows_its_log_growing_then_cancel_stops_the_run(
    page: Page, ui_server: Server, project: UIProject, tmp_path: Path
) -> None:
    project.project.write("ticker.py", TICKING)
    started = tmp_path / "started"
    proc = project.orch.popen(
        "run", "ticker.py:ticker", "-e", "process", "-p", f"started={started}",
        log=tmp_path / "runner",
    )  # fmt: skip
    try:
        wait_for(started.exists, "the ticking step to start", timeout=RUN_TIMEOUT)
        run_id = project.orch.runs()[0]["run_id"]
        sign_in(page, ui_server)
        page.goto(f"{ui_server.url}/runs/{run_id}")
        page.locator("tr[data-step='ticking']").click()
        page.locator("#step-panel #step-detail[data-live='1']").wait_for()
        page.wait_for_function(
            "() => /^tick 3$/m.test(document.querySelector('#step-log').textContent)"
        )
        first = _ticks(page)
        shot(page, "live-log")
        # no click, no reload: the panel refreshes itself while the step runs
        page.wait_for_function(
            "(n) => { const m = document.querySelector('#step-log').textContent"
            ".match(/^tick (\\d+)$/gm); return m && parseInt(m.pop().slice(5)) >= n; }",
            arg=first + 20,
            timeout=60_000,
        )
        assert _ticks(page) >= first + 20
        shot(page, "live-log-grown")

        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("button[data-action='cancel']").click()
        assert proc.wait(timeout=60) == 1
    finally:
        proc.kill()
    shown = project.orch.show(run_id)
    assert shown["status"] == "cancelled" and states(shown) == {"ticking": "interrupted"}
    page.goto(f"{ui_server.url}/runs/{run_id}")
    assert page.locator("#run-header").get_attribute("data-status") == "cancelled"
    assert page.locator("button[data-action='resume']").is_enabled()
    assert page.locator("button[data-action='cancel']").count() == 0
    page.locator("tr[data-step='ticking']").click()
    page.locator("#step-panel #step-detail[data-state='interrupted'][data-live='0']").wait_for()
    assert _ticks(page) >= first + 20  # the log it wrote is kept
    shot(page, "cancelled")


# -- starting runs ------------------------------------------------------------------------
def test_start_a_run_from_the_pipeline_form(
    page: Page, ui_server: Server, project: UIProject
) -> None:
    sign_in(page, ui_server)
    visit(page, f"{ui_server.url}/pipelines/classification", "pipeline-form")
    form = page.locator("form#start-run")
    for param in ("C", "seed", "model_name", "dataset"):
        assert form.locator(f"[name='{param}']").count() == 1, f"no input for {param}"
    form.locator("[name='C']").fill("2.5")
    form.locator("[name='model_name']").fill("ui-started")  # keep iris-classifier as it is
    before = run_ids(project.orch)
    form.locator("[type='submit']").first.click()
    page.wait_for_url(re.compile(r".*/runs/[A-Za-z0-9_-]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    assert run_id not in before, f"{run_id} is an earlier run"
    shot(page, "new-run")

    # the run page follows the run without a reload until every step has finished
    page.wait_for_function(
        "() => window.orchGraph && window.orchGraph.nodes().length === 6 &&"
        " window.orchGraph.nodes().every(n => ['succeeded', 'cached'].includes(n.data('state')))",
        timeout=RUN_TIMEOUT * 1000,
    )
    shot(page, "new-run-finished")
    shown = project.orch.show(run_id)
    assert shown["status"] == "succeeded"
    assert shown["params"]["C"] == 2.5 and shown["params"]["model_name"] == "ui-started"
    assert graph_nodes(page) == states(shown)

    visit(page, f"{ui_server.url}/runs", "runs-after-start")
    row = page.locator(f"tr[data-run-id='{run_id}']")
    assert row.get_attribute("data-status") == "succeeded"


def test_a_bad_parameter_is_shown_next_to_its_field(
    page: Page, ui_server: Server, project: UIProject
) -> None:
    sign_in(page, ui_server)
    visit(page, f"{ui_server.url}/pipelines/classification", "pipeline-form")
    before = run_ids(project.orch)
    form = page.locator("form#start-run")
    form.locator("[name='C']").fill("not-a-number")
    form.locator("[type='submit']").first.click()
    error = page.locator("span.field-error[data-field='C']")
    error.wait_for()
    assert error.inner_text().strip(), "the field error says nothing"
    assert page.locator("span.field-error").count() == 1
    assert page.locator("form#start-run [name='C']").input_value() == "not-a-number"
    shot(page, "field-error")
    assert run_ids(project.orch) == before, "a run was started with a bad parameter"


# -- the model registry -------------------------------------------------------------------
def test_dag_labels_fit_their_boxes_and_fit_zoom_work(
    page: Page, ui_server: Server, project: UIProject
) -> None:
    run_id = project.first["run_id"]
    visit(page, f"{ui_server.url}/runs/{run_id}", "dag")
    graph_nodes(page)
    boxes = page.evaluate(
        """() => window.orchGraph.nodes('.step').map(n => {
             const b = n.boundingBox({includeLabels: false});
             const l = n.boundingBox({includeNodes: false, includeLabels: true});
             return {id: n.id(), label: n.data('label'), font: parseFloat(n.style('font-size')),
                     node: [b.x1, b.y1, b.x2, b.y2], text: [l.x1, l.y1, l.x2, l.y2]}; })"""
    )
    assert len(boxes) == 6, boxes
    for b in boxes:
        (nx1, ny1, nx2, ny2), (tx1, ty1, tx2, ty2) = b["node"], b["text"]
        assert b["font"] >= 12, b
        assert nx1 <= tx1 and tx2 <= nx2 and ny1 <= ty1 and ty2 <= ny2, f"label overflows: {b}"
        assert (tx2 - tx1) >= 0.5 * (nx2 - nx1), f"a mostly empty box: {b}"
        assert "\n" in b["label"], f"no duration line: {b}"  # name, then its duration
    assert page.evaluate("() => window.orchGraph.edges().every(e => e.style('label') === '')")
    page.locator("button[data-dag='labels']").click()
    shown = page.evaluate("() => window.orchGraph.edges().map(e => e.style('label'))")
    assert shown and all(shown), shown  # every input's name, on request
    before = page.evaluate("() => window.orchGraph.zoom()")
    page.locator("button[data-dag='zoom-in']").click()
    assert page.evaluate("() => window.orchGraph.zoom()") > before
    page.locator("button[data-dag='zoom-out']").click()
    page.locator("button[data-dag='zoom-out']").click()
    page.locator("button[data-dag='zoom-out']").click()
    page.locator("button[data-dag='fit']").click()
    inside = page.evaluate(
        """() => { const cy = window.orchGraph, e = cy.extent(), b = cy.elements().boundingBox();
                   return b.x1 >= e.x1 - 1 && b.x2 <= e.x2 + 1 && b.y1 >= e.y1 - 1
                          && b.y2 <= e.y2 + 1; }"""
    )
    assert inside, "fit left part of the graph outside the view"
    bars = page.locator("#timeline .tl-bar")
    assert bars.count() == 6
    assert all((bars.nth(i).bounding_box() or {"width": 0})["width"] > 0 for i in range(6))
    shot(page, "dag-fitted")


def test_promote_an_older_model_version(page: Page, ui_server: Server, project: UIProject) -> None:
    before = models(project.orch)
    prod = [v for v, s in before.items() if s == "production"]
    assert len(prod) == 1, before
    older = min(v for v in before if v != prod[0])
    assert older < prod[0], before

    sign_in(page, ui_server)
    visit(page, f"{ui_server.url}/models/{MODEL}", "model")
    box = page.locator("canvas#metric-chart").bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0, "the metric chart is not drawn"
    labels = page.wait_for_function(  # Chart.js: one point per version, oldest first
        "() => window.Chart && Chart.getChart('metric-chart')?.data.labels"
    ).json_value()
    assert labels == [f"v{v}" for v in sorted(before)], labels
    button = page.locator(f"button[data-promote-version='{older}']")

    asked: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    button.click()
    wait_for(lambda: asked, "the confirm dialog", timeout=10)
    assert dialog_is_confirm(asked[0], older)
    page.wait_for_load_state("networkidle")
    assert page.url == f"{ui_server.url}/models/{MODEL}"
    assert models(project.orch) == before, "dismissing the confirm still promoted"

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    button.click()
    after = wait_for(
        lambda: (m := models(project.orch))[older] == "production" and m,
        f"v{older} to be production",
        timeout=30,
    )
    assert after[prod[0]] == "archived", after
    assert [v for v, s in after.items() if s == "production"] == [older]
    page.wait_for_load_state("networkidle")
    visit(page, f"{ui_server.url}/models/{MODEL}", "model-promoted")
    trail = page.locator("#model-events tr[data-event-actor='ui']").first
    assert "-> production" in trail.inner_text() and f"v{older}" in trail.inner_text()
    assert page.locator(f"button[data-promote-version='{older}']").count() == 0 or (
        page.locator(f"button[data-promote-version='{older}']").is_disabled()
    ), "the production version can still be promoted"


def dialog_is_confirm(message: str, version: int) -> bool:
    return str(version) in message and MODEL in message


@pytest.mark.parametrize("mode", ["no-token", "not-signed-in"])
def test_promote_is_refused_when_read_only(
    page: Page,
    ui_server: Server,
    readonly_server: Server,
    project: UIProject,
    mode: str,
) -> None:
    server = readonly_server if mode == "no-token" else ui_server
    before = models(project.orch)
    candidate = min(v for v, s in before.items() if s != "production")
    visit(page, f"{server.url}/models/{MODEL}", "model-readonly")
    button = page.locator(f"button[data-promote-version='{candidate}']")
    if button.count() and button.is_enabled():  # a user who clicks anyway is refused
        page.on("dialog", lambda d: d.accept())
        with page.expect_navigation() as nav:
            button.click()
        answer = nav.value
        assert answer is not None and answer.status == 403, answer and answer.status
        hint = "read-only" if mode == "no-token" else "sign in"
        assert hint in page.locator("body").inner_text()
        shot(page, "refused")
    # and so is a POST made by hand, as a script would
    resp = page.request.post(
        f"{server.url}/models/{MODEL}/versions/{candidate}/promote", max_redirects=0
    )
    assert resp.status == 403, f"read-only promote answered {resp.status}"
    assert models(project.orch) == before, "a read-only UI promoted a model version"
