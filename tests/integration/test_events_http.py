"""The HTTP events endpoint on a real server on loopback, with a token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def endpoint(tmp_path: Path):
    port = _free_port()
    env = {**os.environ, "ORCH_HOME": str(tmp_path / "home"), "ORCH_EVENT_TOKEN": "s3cret"}
    env.pop("ORCH_DB_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "event", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "events endpoint did not start"
        time.sleep(0.1)
    yield base, env
    proc.terminate()
    proc.wait(10)


def _events(env: dict[str, str]) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator", "events", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    import json

    return json.loads(out)["events"]


def test_events_need_the_token_and_are_stored_before_the_answer(endpoint) -> None:
    base, env = endpoint
    bad = httpx.post(
        f"{base}/events/new-data",
        json={"data": {"rows": 1}},
        headers={"Authorization": "Bearer wrong"},
    )
    assert bad.status_code == 401 and bad.json()["detail"] == "missing or wrong token"
    assert httpx.post(f"{base}/events/new-data").status_code == 401
    ok = httpx.post(
        f"{base}/events/new-data",
        json={"data": {"rows": 5}, "key": "b-1"},
        headers={"Authorization": "Bearer s3cret"},
    )
    assert ok.status_code == 202 and ok.json()["duplicate"] is False
    (stored,) = _events(env)  # durable as soon as acknowledged
    assert stored["id"] == ok.json()["event_id"]
    assert stored["data"] == {"rows": 5} and stored["source"] == "http"
    again = httpx.post(
        f"{base}/events/new-data",
        json={"data": {"rows": 5}, "key": "b-1"},
        headers={"Authorization": "Bearer s3cret"},
    )
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert len(_events(env)) == 1


def test_bad_event_body_names_the_field(endpoint) -> None:
    base, _ = endpoint
    res = httpx.post(
        f"{base}/events/x",
        json={"data": [1, 2], "colour": "red"},
        headers={"Authorization": "Bearer s3cret"},
    )
    assert res.status_code == 422
    fields = {tuple(e["loc"])[-1] for e in res.json()["detail"]}
    assert {"data", "colour"} <= fields


def test_endpoint_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    env = {**os.environ, "ORCH_HOME": str(tmp_path / "home")}
    env.pop("ORCH_EVENT_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "event", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "the events endpoint needs a token" in proc.stderr


def test_an_event_name_breaking_the_rule_is_a_422_and_nothing_is_stored(endpoint) -> None:
    base, env = endpoint
    res = httpx.post(
        f"{base}/events/new%20data", headers={"Authorization": "Bearer s3cret"}, json={}
    )
    assert res.status_code == 422, res.text
    assert "invalid event name 'new data'" in res.json()["detail"]
    assert _events(env) == []
