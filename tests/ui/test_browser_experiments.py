"""Experiments and run control in a real browser (Debian's chromium with playwright),
against the real `orch ui` over a project filled by the real `orch` CLI.

The `lab` project (one per pytest-xdist worker) has `lab.py:lab` run three times: C=0.5,
C=2.0, then, after `fit`'s code is edited, C=3.0; its `score` step logs the metric
`score`. Tests that need their own runs (a retried step, a failed run to resume, a
running run whose timeline grows) make them in the same project. The registry test uses
test_browser.py's `project` (classification twice: iris-classifier v1 archived, v2
production), a copy of its own, so the promotions there and here never meet. The browser, the page
fixture (which fails on any uncaught JavaScript error) and the screenshots in
`test-artifacts/ui/` are those of test_browser.py; expected values come from the CLI.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_browser
from orchtest import Orch, Project, states, wait_for
from test_browser import (
    MODEL,
    RUN_TIMEOUT,
    TOKEN,
    Server,
    UIProject,
    _start_ui,
    models,
    shot,
    sign_in,
    visit,
)

# the fixtures of test_browser.py (`browser` is conftest.py's, one per process)
page = test_browser.page
project = test_browser.project  # here: this module's own copy (its own state folder)
ui_server = test_browser.ui_server

try:
    from playwright.sync_api import Page
except ImportError:  # reported by the `browser` fixture
    Page = Any  # type: ignore[assignment,misc]

LAB = """
from orchestrator import current, pipeline, step


@step(kind="ingest")
def load(n: int = 30) -> list[float]:
    return [float(i % 7) for i in range(n)]


@step(kind="train")
def fit(xs: list[float], C: float = 1.0) -> float:
    return sum(xs) / len(xs) * C  # the first version


@step(kind="evaluate")
def score(model: float) -> float:
    current().log_metric("score", model)
    return model


@pipeline
def lab(C: float = 1.0):
    score(fit(load(), C=C))
"""


@dataclasses.dataclass
class Lab:
    orch: Orch
    project: Project
    runs: list[str]  # C=0.5, C=2.0, then C=3.0 with fit's code edited


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    base = tmp_path_factory.mktemp("ui-lab")
    project = Project(base / "proj")
    orch = Orch(base / "orch-home", project.root)
    project.write("lab.py", LAB)
    runs = [orch.run("lab.py:lab", "-p", "C=0.5"), orch.run("lab.py:lab", "-p", "C=2.0")]
    project.edit("lab.py", "* C  # the first version", "* C + 0.25  # the second version")
    runs.append(orch.run("lab.py:lab", "-p", "C=3.0"))
    assert all(r["status"] == "succeeded" for r in runs), runs
    return Lab(orch, project, [r["run_id"] for r in runs])


@pytest.fixture(scope="session")
def lab_server(lab: Lab) -> Iterator[Server]:
    yield from _start_ui(UIProject(lab.orch, lab.project, {}, {}, {}), "ui-lab", "--token", TOKEN)


def _rows(page: Page) -> list[str]:
    rows = page.locator("#experiments-table tbody tr[data-run-id]")
    return [rows.nth(i).get_attribute("data-run-id") or "" for i in range(rows.count())]


def test_runs_table_metric_columns_sort_and_compare_three_runs(
    page: Page, lab_server: Server, lab: Lab
) -> None:
    visit(page, f"{lab_server.url}/experiments?pipeline=lab&columns=params,metrics", "table")
    heads = page.locator("th a[data-sort]")
    cols = [heads.nth(i).get_attribute("data-sort") for i in range(heads.count())]
    assert "params.C" in cols and "metrics.score" in cols, cols
    cli = lab.orch("runs", "--pipeline", "lab", "--columns", "params,metrics", "--json")
    assert cli.code == 0, cli.describe()
    by_id = {r["run_id"]: r for r in cli.json["runs"]}
    for rid in lab.runs:
        row = page.locator(f"tr[data-run-id='{rid}']")
        c = float(row.locator("td[data-col='params.C']").inner_text())
        assert c == by_id[rid]["params"]["C"]
        shown = float(row.locator("td[data-col='metrics.score']").inner_text())
        assert shown == pytest.approx(by_id[rid]["metrics"]["score"], rel=1e-5)

    page.locator("th a[data-sort='metrics.score']").click()
    page.wait_for_url(re.compile(r".*sort=-metrics\.score"))
    page.wait_for_load_state("networkidle")
    shot(page, "sorted")
    ranked = lab.orch("runs", "--pipeline", "lab", "--sort", "-score", "--json")
    assert ranked.code == 0, ranked.describe()
    order = [r["run_id"] for r in ranked.json["runs"]]
    assert _rows(page) == order, (_rows(page), order)
    assert order[0] == lab.runs[2]  # C=3.0 and the edited fit score best

    for rid in lab.runs:
        page.locator(f"input[type='checkbox'][name='run'][value='{rid}']").check()
    page.locator("#compare-selected").click()
    page.wait_for_url(re.compile(r".*/compare\?runs="))
    page.wait_for_load_state("networkidle")
    shot(page, "compare")
    assert page.locator("h1").inner_text().startswith("Compare 3 runs")
    best = page.locator("tr[data-metric='score'] td.best")
    assert best.count() == 1 and best.get_attribute("data-run-id") == lab.runs[2]
    sections = page.locator("section.differences")
    assert sections.count() == 2
    edited = page.locator(f"section.differences[data-to='{lab.runs[1]}']")
    assert edited.get_attribute("data-from") == lab.runs[2]  # the first checked row
    param = edited.locator("li[data-kind='parameter'][data-step='fit']")
    assert "parameter 'C' changed: 3.0 -> 2.0" in param.inner_text()
    code = edited.locator("li[data-kind='code'][data-step='fit']")
    assert code.count() >= 1 and "code changed" in code.first.inner_text()
    assert "fit" in code.first.inner_text()
    assert edited.locator("li[data-step='load']").count() == 0  # the same data and code
    old = page.locator(f"section.differences[data-to='{lab.runs[0]}']")
    assert old.locator("li[data-kind='code'][data-step='fit']").count() >= 1
    code.first.locator("a").click()
    page.wait_for_url(re.compile(rf".*/runs/{lab.runs[1]}/steps/fit$"))
    shot(page, "difference-step")


FLAKY = """
from pathlib import Path

from orchestrator import pipeline, step


@step(retries=1, retry_backoff=0.1)
def wobble(marker: str = "") -> int:
    seen = Path(marker)
    if not seen.exists():
        seen.write_text("1")
        raise RuntimeError("first attempt: the cache is cold")
    raise ValueError("second attempt: still broken")


@pipeline
def flaky(marker: str = ""):
    wobble(marker=marker)
"""


def test_a_retried_step_shows_both_attempts_errors(
    page: Page, lab_server: Server, lab: Lab, tmp_path: Path
) -> None:
    lab.project.write("flaky.py", FLAKY)
    failed = lab.orch.run("flaky.py:flaky", "-p", f"marker={tmp_path / 'seen'}", code=1)
    history = (
        failed["steps"][0].get("attempt_history")
        or lab.orch.show(failed["run_id"])["steps"][0]["attempt_history"]
    )
    assert [a["state"] for a in history] == ["failed", "failed"], history
    visit(page, f"{lab_server.url}/runs/{failed['run_id']}", "retried")
    assert page.locator("#run-failure").get_attribute("data-step") == "wobble"
    panel = page.locator("#step-panel")
    panel.locator("#step-attempts").wait_for()
    first = panel.locator("tr.attempt-detail[data-attempt='1'] .attempt-error").inner_text()
    second = panel.locator("#step-error").inner_text()  # the last attempt: the step's error
    rows = [
        panel.locator(f"#step-attempts tr[data-attempt='{n}'][data-state]").inner_text()
        for n in (1, 2)
    ]
    assert "RuntimeError: first attempt" in rows[0] and "ValueError: second" in rows[1], rows
    assert "RuntimeError: first attempt: the cache is cold" in first
    assert "ValueError: second attempt: still broken" in second
    assert "second attempt" not in first and "first attempt" not in second
    for a, text in zip(history, (first, second), strict=True):
        assert a["error"] in text
    shot(page, "both-attempts")


FRAGILE = """
from pathlib import Path

from orchestrator import pipeline, step


@step(kind="ingest")
def fetch(n: int = 3) -> list[int]:
    return list(range(n))


@step(kind="train")
def needs(xs: list[int], flag: str = "") -> int:
    if not Path(flag).exists():
        raise FileNotFoundError(f"no flag file yet: {flag}")
    return sum(xs)


@pipeline
def fragile(flag: str = ""):
    needs(fetch(), flag=flag)
"""


def test_resume_a_failed_run_from_the_ui(
    page: Page, lab_server: Server, lab: Lab, tmp_path: Path
) -> None:
    lab.project.write("fragile.py", FRAGILE)
    flag = tmp_path / "flag"
    failed = lab.orch.run("fragile.py:fragile", "-p", f"flag={flag}", code=1)
    assert states(failed) == {"fetch": "succeeded", "needs": "failed"}
    sign_in(page, lab_server)
    visit(page, f"{lab_server.url}/runs/{failed['run_id']}", "failed")
    assert "no flag file yet" in page.locator("#run-failure").inner_text()
    flag.write_text("now")
    page.locator("button[data-action='resume']").click()
    page.wait_for_url(re.compile(r".*/runs/[A-Za-z0-9_-]+$"))
    new_id = page.url.rsplit("/", 1)[1]
    assert new_id != failed["run_id"]
    page.wait_for_function(
        "() => document.getElementById('run-header').dataset.status === 'succeeded'",
        timeout=RUN_TIMEOUT * 1000,
    )
    shot(page, "resumed")
    resumed = lab.orch.show(new_id)
    assert resumed["resumed_from"] == failed["run_id"] and resumed["status"] == "succeeded"
    assert states(resumed) == {"fetch": "cached", "needs": "succeeded"}


STAGED = """
import time
from pathlib import Path

from orchestrator import pipeline, step


def _wait(path: str) -> None:
    while not Path(path).exists():
        time.sleep(0.05)


@step
def first(gate: str = "") -> int:
    Path(gate + ".started").touch()
    _wait(gate + ".one")
    return 1


@step
def second(x: int, gate: str = "") -> int:
    _wait(gate + ".two")
    return x + 1


@pipeline
def staged(gate: str = ""):
    second(first(gate=gate), gate=gate)
"""


def _timeline(page: Page) -> dict[str, float]:
    rows = page.locator("#timeline .tl-row")
    return {
        rows.nth(i).get_attribute("data-timeline-step") or "": float(
            rows.nth(i).get_attribute("data-end") or 0
        )
        for i in range(rows.count())
    }


def test_the_timeline_of_a_running_run_refreshes_itself(
    page: Page, lab_server: Server, lab: Lab, tmp_path: Path
) -> None:
    lab.project.write("staged.py", STAGED)
    gate = str(tmp_path / "gate")
    proc = lab.orch.popen(
        "run", "staged.py:staged", "-p", f"gate={gate}", log=tmp_path / "runner"
    )  # fmt: skip
    try:
        wait_for(Path(gate + ".started").exists, "the first step to start", timeout=RUN_TIMEOUT)
        run_id = lab.orch.runs()[0]["run_id"]
        visit(page, f"{lab_server.url}/runs/{run_id}", "running")
        assert page.locator("#timeline").get_attribute("data-live") == "1"
        assert list(_timeline(page)) == ["first"]
        end = _timeline(page)["first"]
        # no reload: the running step's bar grows, then the next step's bar appears
        page.wait_for_function(
            "(e) => { const r = document.querySelector('#timeline [data-timeline-step=first]');"
            " return r && parseFloat(r.dataset.end) > e + 1; }",
            arg=end,
            timeout=30_000,
        )
        Path(gate + ".one").touch()
        page.locator("#timeline [data-timeline-step='second']").wait_for(timeout=60_000)
        shot(page, "second-started")
        Path(gate + ".two").touch()
        assert proc.wait(timeout=RUN_TIMEOUT) == 0
    finally:
        proc.kill()
        proc.wait()
    page.locator("#timeline[data-live='0']").wait_for(timeout=30_000)
    shown = lab.orch.show(run_id)
    assert shown["status"] == "succeeded"
    final = _timeline(page)
    assert list(final) == ["first", "second"]
    assert final["second"] >= final["first"]
    shot(page, "finished")


def test_alias_promote_and_the_audit_trail(
    page: Page, ui_server: Server, project: UIProject
) -> None:
    before = models(project.orch)
    older = min(before)
    assert before[older] == "archived", before
    sign_in(page, ui_server)
    visit(page, f"{ui_server.url}/models/{MODEL}", "model")
    page.locator("#alias-name").fill("champion")
    page.locator("#alias-version").select_option(str(older))
    page.locator("#alias-reason").fill("best on the holdout")
    page.locator("#alias-submit").click()
    alias = page.locator("#model-aliases span[data-alias='champion']")
    alias.wait_for()
    assert alias.get_attribute("data-alias-version") == str(older)
    shot(page, "aliased")

    page.on("dialog", lambda dialog: dialog.accept())
    page.locator(f"button[data-promote-version='{older}']").click()
    wait_for(
        lambda: models(project.orch)[older] == "production", f"v{older} production", timeout=30
    )
    visit(page, f"{ui_server.url}/models/{MODEL}", "promoted")
    events = project.orch("models", MODEL, "--events", "--json")
    assert events.code == 0, events.describe()
    trail = events.json if isinstance(events.json, list) else events.json["events"]
    rows = page.locator("#model-events tbody tr[data-event-kind]")
    assert rows.count() == len(trail), (rows.count(), trail)
    for i, e in enumerate(trail):  # newest first, as the CLI lists them
        row = rows.nth(i)
        assert row.get_attribute("data-event-actor") == e["actor"]
        assert row.get_attribute("data-event-version") == str(e["version"])
        assert row.get_attribute("data-event-kind") == e["kind"]
        text = row.inner_text()
        assert all(str(v) in text for v in (e["from_value"], e["to_value"]) if v), (text, e)
        assert (e["reason"] or "") in text
    seen = [(e["kind"], e["actor"], e["version"], e["from_value"], e["to_value"]) for e in trail]
    assert ("alias", "ui", older, None, f"champion: v{older}") in seen, seen
    assert any(k != "alias" and a == "ui" and v == older and t == "production"
               for k, a, v, _, t in seen), seen  # fmt: skip
    assert any(a == "deploy" for _, a, _, _, _ in seen), seen  # the deploy steps' records
    alias_event = next(e for e in trail if e["kind"] == "alias")
    assert alias_event["reason"] == "best on the holdout"
    shot(page, "trail")


SWEEP_EVAL = """
from pydantic import BaseModel

from orchestrator import pipeline, step


@step(kind="train")
def fitc(C: float = 1.0) -> float:
    return C


class Report(BaseModel):
    metrics: dict[str, float]


@step(kind="evaluate")
def judge(model: float) -> Report:
    return Report(metrics={"score": -((model - 1.0) ** 2)})


@pipeline
def swept(C: float = 1.0):
    judge(fitc(C=C))
"""


def test_a_sweep_opens_in_the_compare_view_from_its_run_page(
    page: Page, lab_server: Server, lab: Lab
) -> None:
    lab.project.write("brsweep.py", SWEEP_EVAL)
    res = lab.orch("sweep", "brsweep.py:swept", "--grid", "fitc.C=0.1,1,4", "--json")
    assert res.code == 0, res.describe()
    run_id = res.json[0]["run_id"]
    table = lab.orch("sweep-table", run_id, "--json")
    assert table.code == 0, table.describe()
    visit(page, f"{lab_server.url}/runs/{run_id}", "sweep-run")
    page.locator("#run-sweep").click()
    page.wait_for_url(re.compile(rf".*/compare\?sweep={run_id}$"))
    page.wait_for_load_state("networkidle")
    shot(page, "sweep-compare")
    rows = page.locator("#sweep-table tbody tr[data-combination]")
    names = [rows.nth(i).get_attribute("data-combination") for i in range(rows.count())]
    assert names == [r["combination"] for r in table.json]
    best = page.locator("#sweep-table tr.best")
    assert best.count() == 1 and best.get_attribute("data-combination") == names[0]
    assert float(best.locator("td[data-col='params.fitc.C']").inner_text()) == 1.0
    for want in table.json:
        row = page.locator(f"#sweep-table tr[data-combination='{want['combination']}']")
        shown = float(row.locator("td[data-col='metrics.score']").inner_text())
        assert shown == pytest.approx(want["metrics"]["score"], rel=1e-5, abs=1e-9)


def test_edit_and_rerun_prefills_the_start_form(page: Page, lab_server: Server, lab: Lab) -> None:
    earlier = lab.orch.show(lab.runs[1])  # C=2.0
    sign_in(page, lab_server)
    visit(page, f"{lab_server.url}/runs/{lab.runs[1]}", "run")
    page.locator("#edit-rerun").click()
    page.wait_for_url(re.compile(rf".*/pipelines/lab\?from={lab.runs[1]}$"))
    shot(page, "prefilled")
    form = page.locator("form#start-run")
    assert float(form.locator("[name='C']").input_value()) == earlier["params"]["C"]
    assert form.locator("select[name='_executor']").input_value() == earlier["executor"]
    form.locator("[name='C']").fill("2.5")
    form.locator("select[name='_executor']").select_option("process")
    form.locator("[type='submit']").first.click()
    page.wait_for_url(re.compile(r".*/runs/[A-Za-z0-9_-]+$"))
    new_id = page.url.rsplit("/", 1)[1]
    assert new_id not in lab.runs
    page.wait_for_function(
        "() => document.getElementById('run-header').dataset.status === 'succeeded'",
        timeout=RUN_TIMEOUT * 1000,
    )
    shown = lab.orch.show(new_id)
    assert shown["params"]["C"] == 2.5 and shown["executor"] == "process", shown
