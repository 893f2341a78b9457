"""The model page's reproduce button: token-protected, it rebuilds a version from its
lineage, verifies it (as `orch reproduce NAME:V --verify`) and shows the verdict.

The world is real: the iris project of tests/e2e/reproject.py run twice through the
`orch` command line (v1 deterministic, v2 with `jitter=true`, whose features step draws
`os.urandom` noise), and the app built by `create_app` over the CLI's own stores.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from orchtest import Orch, Project  # noqa: E402
from reproject import LINEAGE, write_project  # noqa: E402

TOKEN = "reproduce-ui-token-41c9"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


class _Attrs(HTMLParser):
    """The attributes of every element of one tag."""

    def __init__(self, tag: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tag = tag
        self.found: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == self.tag:
            self.found.append({k: v or "" for k, v in attrs})


def tags(html: str, tag: str, **want: str) -> list[dict[str, str]]:
    parser = _Attrs(tag)
    parser.feed(html)
    keys = {k.replace("_", "-"): v for k, v in want.items()}
    return [a for a in parser.found if all(a.get(k) == v for k, v in keys.items())]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Orch:
    tmp = tmp_path_factory.mktemp("reproduce-ui")
    project = Project(tmp / "proj")
    write_project(project)
    orch = Orch(tmp / "home", project.root)
    orch.run("flow.py:iris")
    orch.run("flow.py:iris", "--param", "jitter=true")
    return orch


@pytest.fixture
def client(world: Orch) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from orchestrator.artifacts.store import ArtifactStore
    from orchestrator.store.metadata import MetadataStore
    from orchestrator.ui.app import create_app

    store = MetadataStore(f"sqlite:///{world.db}")
    app = create_app(store, ArtifactStore(world.artifacts), home=world.home, token=TOKEN)
    with TestClient(app, follow_redirects=False) as c:
        yield c
    store.close()


def test_each_version_has_a_reproduce_button_disabled_until_signed_in(client: Any) -> None:
    html = client.get("/models/iris").text
    buttons = tags(html, "button", data_reproduce_version="1")
    assert len(buttons) == 1 and "disabled" in buttons[0]
    forms = tags(html, "form", action="/models/iris/versions/1/reproduce")
    assert len(forms) == 1 and forms[0]["method"] == "post"
    signed = client.get("/models/iris", headers=BEARER).text
    assert "disabled" not in tags(signed, "button", data_reproduce_version="2")[0]


def test_reproduce_needs_the_token(client: Any) -> None:
    resp = client.post("/models/iris/versions/1/reproduce")
    assert resp.status_code == 403 and "/login" in resp.text


def test_identical_version_is_shown_identical(client: Any) -> None:
    resp = client.post("/models/iris/versions/1/reproduce", headers=BEARER)
    assert resp.status_code == 200, resp.text
    (verdict,) = tags(resp.text, "div", id="reproduce-verdict")
    assert (verdict["data-identical"], verdict["data-first-step"]) == ("true", "")
    rows = tags(resp.text, "tr", data_identical="true")
    assert [r["data-step"] for r in rows] == LINEAGE
    assert "<strong>identical</strong>" in resp.text


def test_nondeterministic_step_is_shown_as_the_first_difference(client: Any) -> None:
    resp = client.post("/models/iris/versions/2/reproduce", headers=BEARER)
    assert resp.status_code == 200, resp.text
    (verdict,) = tags(resp.text, "div", id="reproduce-verdict")
    assert verdict["data-identical"] == "false"
    assert (verdict["data-first-step"], verdict["data-reason"]) == ("features", "nondeterminism")
    assert "differs: step &#39;features&#39; is the first whose output differs" in resp.text


def test_unknown_version_is_a_404_naming_it(client: Any) -> None:
    resp = client.post("/models/iris/versions/9/reproduce", headers=BEARER)
    assert resp.status_code == 404 and "no version 9 of model" in resp.text
