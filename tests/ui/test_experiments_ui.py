"""The experiments table and the compare page, through the UI's test client, over the
store the real CLI filled (conftest.py: `classification` with C=1.0, then C=10.0).
Expected values come from the CLI (`orch runs --json`, `orch compare --json`)."""

from __future__ import annotations

from html import unescape
from html.parser import HTMLParser
from typing import Any

from orchestrator.ui.views_experiments import chart


class _Tags(HTMLParser):
    """Each element's tag, attributes and its own text, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[dict[str, str]] = []
        self.stack: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = {"_tag": tag, "_text": ""} | {k: v or "" for k, v in attrs}
        self.found.append(el)
        if tag not in ("input", "br", "meta", "link"):
            self.stack.append(el)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()["_tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for el in self.stack:
            el["_text"] += data


def tags(html: str, tag: str, **attrs: str) -> list[dict[str, str]]:
    p = _Tags()
    p.feed(html)
    want = {k.replace("_", "-"): v for k, v in attrs.items()}
    return [
        el
        for el in p.found
        if el["_tag"] == tag
        and all(v == "*" and k in el or el.get(k) == v for k, v in want.items())
    ]


def _cli(ui_world: Any, *args: str) -> Any:
    res = ui_world.orch(*args, "--json")
    assert res.code == 0, res.describe()
    return res.json


def test_experiments_table_has_param_and_metric_columns_sorted_and_filtered(
    ui_world: Any, ui_client: Any
) -> None:
    client = ui_client()
    first, second = ui_world.first["run_id"], ui_world.second["run_id"]
    expected = _cli(ui_world, "runs", "--pipeline", "classification", "--sort", "-accuracy")
    resp = client.get(
        "/experiments",
        params={"pipeline": "classification", "sort": "-accuracy", "columns": "C,accuracy"},
    )
    assert resp.status_code == 200, resp.text
    rows = tags(resp.text, "tr", data_run_id="*")
    assert [r["data-run-id"] for r in rows] == [r["run_id"] for r in expected["runs"]]
    assert {r["data-run-id"] for r in rows} == {first, second}
    assert [c["_text"] for c in tags(resp.text, "td", data_col="params.C")] == [
        str(r["params"]["C"]).removesuffix(".0") for r in expected["runs"]
    ]
    shown = [float(c["_text"]) for c in tags(resp.text, "td", data_col="metrics.accuracy")]
    assert shown == [round(r["metrics"]["accuracy"], 6) for r in expected["runs"]]
    assert shown == sorted(shown, reverse=True)
    boxes = tags(resp.text, "input", type="checkbox", name="run")
    assert [b["value"] for b in boxes] == [r["data-run-id"] for r in rows]
    # the column header sorts the other way
    assert tags(resp.text, "a", data_sort="metrics.accuracy")[0]["href"].endswith(
        "sort=metrics.accuracy"
    )

    only = client.get("/experiments", params={"filter": "C=10", "columns": "C"})
    assert [r["data-run-id"] for r in tags(only.text, "tr", data_run_id="*")] == [second]
    found = client.get("/experiments", params={"search": first[:8]})
    assert [r["data-run-id"] for r in tags(found.text, "tr", data_run_id="*")] == [first]

    bad = client.get("/experiments", params={"filter": "accuracy>high"})
    assert bad.status_code == 422
    assert "--filter 'accuracy>high': 'high' is not a number for '>'" in unescape(bad.text)


def test_compare_page_marks_the_best_metric_and_links_each_difference_to_its_step(
    ui_world: Any, ui_client: Any
) -> None:
    client = ui_client()
    first, second = ui_world.first["run_id"], ui_world.second["run_id"]
    picked = client.get(
        "/compare/select", params=[("run", first), ("run", second)], follow_redirects=False
    )
    assert picked.status_code == 303
    assert picked.headers["location"] == f"/compare?runs={first},{second}"

    cli = _cli(ui_world, "compare", first, second)
    assert client.get("/api/compare", params={"runs": f"{first},{second}"}).json() == cli

    html = client.get("/compare", params={"runs": f"{first},{second}"}).text
    for name, m in cli["metrics"].items():
        row = tags(html, "tr", data_metric=name)
        assert row, name
        best = [c for c in tags(html, "td", data_run_id="*") if "best" in c.get("class", "")]
        if m["best"] is not None:
            assert any(c["data-run-id"] == m["best"] for c in best)
    assert cli["metrics"]["accuracy"]["best"] == second  # C=10 fits iris better here

    items = tags(html, "li", data_step="*")
    assert [(i["data-step"], i["data-kind"]) for i in items] == [
        (c["step"], c["kind"]) for c in cli["differences"][0]["changes"]
    ]
    assert ("train", "parameter") == (items[0]["data-step"], items[0]["data-kind"])
    assert "parameter 'params' changed:" in items[0]["_text"] and '"C": 10.0' in items[0]["_text"]
    assert tags(html, "a", href=f"/runs/{second}/steps/train")

    one = client.get("/api/compare", params={"runs": first})
    assert one.status_code == 422
    assert one.json()["detail"] == "compare needs at least two runs, got 1"
    missing = client.get("/compare", params={"runs": f"{first},fffffffffff"})
    assert missing.status_code == 404 and "no run 'fffffffffff'" in unescape(missing.text)


def test_series_chart_draws_straight_segments_per_run_scaled_to_the_box() -> None:
    series = {
        "a": [{"position": 0, "value": 1.0}, {"position": 2, "value": 0.0}],
        "b": [{"position": 1, "value": 0.5}],
    }
    c = chart(series, w=108, h=58)
    assert [line["run"] for line in c["lines"]] == ["a", "b"]
    assert c["lines"][0]["points"] == "4.0,4.0 104.0,54.0"  # max value at the top
    assert c["lines"][1]["points"] == "54.0,29.0"
    assert (c["low"], c["high"]) == (0.0, 1.0)
    assert chart({"a": []})["lines"] == []
