"""The prediction server over real HTTP: schema, errors, hot swap under load, request log.

State is made as a user makes it: `orch run classification` into a temporary ORCH_HOME
registers `iris-classifier` v1 as production. The server runs in a subprocess calling
`orchestrator.serving.server.serve` (the real uvicorn on a loopback port, the real SQLite file).
A second run with another `C` registers v2; the test promotes it through the registry
and checks that the server swaps to it while a client keeps firing requests.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from orchtest import Orch, wait_for

from orchestrator.artifacts.store import ArtifactStore
from orchestrator.errors import OrchestratorError
from orchestrator.serving.server import create_app, serve
from orchestrator.store.metadata import MetadataStore
from orchestrator.store.registry import StoreRegistry

MODEL = "iris-classifier"
ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}
ROWS = [
    ROW,
    {**ROW, "sepal length (cm)": 6.3, "petal length (cm)": 4.9, "petal width (cm)": 1.5},
    {**ROW, "sepal length (cm)": 7.2, "petal length (cm)": 6.1, "petal width (cm)": 2.5},
]

SERVER = """
import sys
from pathlib import Path
from orchestrator.cli.app import Env
from orchestrator.serving.server import serve
serve(Env().registry(), sys.argv[1], port=int(sys.argv[2]), poll_interval=0.2,
      request_log=Path(sys.argv[3]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def registry(orch: Orch) -> StoreRegistry:
    return StoreRegistry(MetadataStore(f"sqlite:///{orch.db}"), ArtifactStore(orch.artifacts))


class Live:
    """A running server: its base URL, its request log, the CLI runner of its ORCH_HOME."""

    def __init__(self, orch: Orch, url: str, log: Path) -> None:
        self.orch, self.url, self.log = orch, url, log
        self.http = httpx.Client(base_url=url, timeout=10)

    def log_lines(self) -> list[dict[str, Any]]:
        text = self.log.read_text() if self.log.exists() else ""
        return [json.loads(line) for line in text.splitlines()]


def _healthy(http: httpx.Client) -> bool:
    try:
        return http.get("/health").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("serving")
    orch = Orch(tmp / "home", tmp)
    orch.run("classification")
    port, log = free_port(), tmp / "requests.jsonl"
    with open(tmp / "server.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, MODEL, str(port), str(log)],
            cwd=tmp,
            env=orch.env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    server = Live(orch, f"http://127.0.0.1:{port}", log)
    try:
        wait_for(lambda: proc.poll() is not None or _healthy(server.http), "the server", timeout=30)
        assert proc.poll() is None, (tmp / "server.err").read_text()
        yield server
    finally:
        server.http.close()
        proc.terminate()
        proc.wait(timeout=10)


def test_health_and_model_show_the_production_version(live: Live) -> None:
    assert live.http.get("/health").json() == {"status": "ok", "model": MODEL, "version": 1}
    meta = live.http.get("/model").json()
    assert meta["version"] == 1 and meta["run_id"] and meta["created_at"]
    assert set(meta["metrics"]) >= {"accuracy"}
    assert meta["features"] == list(ROW)


def test_predict_one_row_and_a_batch(live: Live) -> None:
    res = live.http.post("/predict", json=ROW)
    assert res.status_code == 200, res.text
    assert res.json()["prediction"] in {0, 1, 2}
    assert (res.json()["model"], res.json()["version"]) == (MODEL, 1)
    res = live.http.post("/predict/batch", json={"rows": ROWS})
    assert res.status_code == 200, res.text
    preds = res.json()["predictions"]
    assert len(preds) == 3 and set(preds) <= {0, 1, 2}


@pytest.mark.parametrize(
    ("payload", "field", "error"),
    [
        ({k: v for k, v in ROW.items() if k != "petal width (cm)"}, "petal width (cm)", "required"),
        ({**ROW, "sepal width (cm)": "wide"}, "sepal width (cm)", "valid number"),
        ({**ROW, "colour": "blue"}, "colour", "not permitted"),
    ],
    ids=["missing", "string-in-numeric", "unknown-field"],
)
def test_bad_rows_are_422_naming_the_field(
    live: Live, payload: dict[str, Any], field: str, error: str
) -> None:
    res = live.http.post("/predict", json=payload)
    assert res.status_code == 422, res.text
    assert [d["field"] for d in res.json()["detail"]] == [field]
    assert error in res.json()["detail"][0]["error"]
    res = live.http.post("/predict/batch", json={"rows": [ROW, payload]})
    assert res.status_code == 422, res.text
    assert [d["field"] for d in res.json()["detail"]] == [f"rows[1].{field}"]


def test_serve_refuses_an_unknown_model(live: Live) -> None:
    with pytest.raises(OrchestratorError, match="no model 'nope' is registered"):
        serve(registry(live.orch), "nope", port=free_port())


def test_no_production_version_is_503(live: Live) -> None:
    app = create_app(registry(live.orch), "not-yet", poll_interval=0.2)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{config.port}"
        wait_for(lambda: server.started, "the in-process server", timeout=10)
        res = httpx.get(f"{url}/health")
        assert res.status_code == 503
        assert "no production version of model 'not-yet'" in res.json()["detail"]
        assert httpx.post(f"{url}/predict", json=ROW).status_code == 503
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _fire(url: str, stop: threading.Event, seen: list[int], failures: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        deadline = time.monotonic() + 45
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                res = http.post("/predict", json=ROW)
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
                continue
            if res.status_code != 200:
                failures.append(f"{res.status_code} {res.text}")
            else:
                seen.append(res.json()["version"])


def test_hot_swap_under_load_fails_no_request(live: Live) -> None:
    doc = live.orch.run("classification", "--param", "C=0.05")
    assert doc["status"] == "succeeded"
    reg = registry(live.orch)
    newest = max(v.version for v in reg.versions(MODEL))
    assert newest == 2
    logged_before = len(live.log_lines())
    stop, seen, failures = threading.Event(), [], []
    client = threading.Thread(target=_fire, args=(live.url, stop, seen, failures))
    client.start()
    try:
        wait_for(lambda: len(seen) >= 20, "requests answered by v1", timeout=20)
        if reg.production(MODEL).version != 2:  # type: ignore[union-attr]
            reg.promote(MODEL, 2, "test: hot swap")
        wait_for(
            lambda: live.http.get("/health").json()["version"] == 2, "the swap to v2", timeout=20
        )
        count = len(seen)
        wait_for(lambda: len(seen) >= count + 20, "requests answered by v2", timeout=20)
    finally:
        stop.set()
        client.join(timeout=30)
    reg.store.close()
    assert failures == []
    assert seen[0] == 1 and seen[-1] == 2
    assert seen == sorted(seen), "a v1 answer came after a v2 answer"
    lines = live.log_lines()[logged_before:]
    assert [line["version"] for line in lines] == seen
    assert all(line["rows"] == [ROW] and len(line["predictions"]) == 1 for line in lines)


def _version_of(http: httpx.Client) -> int | None:
    try:
        res = http.get("/health")
    except httpx.TransportError:
        return None
    return int(res.json()["version"]) if res.status_code == 200 else None


def test_serve_an_alias_follows_it_and_records_its_presence(live: Live, tmp_path: Path) -> None:
    from orchestrator.store.model_servers import ModelServers

    orch, reg = live.orch, registry(live.orch)
    if len(reg.versions(MODEL)) < 2:
        assert orch.run("classification", "--param", "C=0.05")["status"] == "succeeded"
    assert orch("alias", MODEL, "staging", "1").code == 0
    port = free_port()
    args = ("serve", f"{MODEL}@staging", "--port", str(port), "--poll-interval", "0.2")
    proc = orch.popen(*args, log=tmp_path / "alias-server")
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    servers = ModelServers(reg.store)
    try:
        wait_for(lambda: proc.poll() is not None or _version_of(http) == 1, "v1 by alias", 30)
        assert proc.poll() is None, (tmp_path / "alias-server.err").read_text()
        wait_for(lambda: servers.live(MODEL), "the server's heartbeat", timeout=10)
        [row] = servers.live(MODEL)
        assert (row["selector"], row["version"]) == ("staging", 1)
        assert row["url"] == f"http://127.0.0.1:{port}" and row["pid"] == proc.pid
        assert orch("alias", MODEL, "staging", "2").code == 0
        wait_for(lambda: _version_of(http) == 2, "the swap to v2 through the alias", 20)
        assert http.post("/predict", json=ROW).json()["version"] == 2
        wait_for(lambda: servers.live(MODEL)[0]["version"] == 2, "the heartbeat of v2", 10)
        assert orch("alias", MODEL, "staging", "--delete").code == 0
        time.sleep(1.0)  # a removed alias keeps the served version serving
        assert _version_of(http) == 2
    finally:
        http.close()
        proc.terminate()
        proc.wait(timeout=10)
    assert servers.live(MODEL) == []  # a stopped server removes itself
    reg.store.close()
