"""The closed retraining loop of `examples/retraining`, end to end, with real processes.

The example is copied into the test's project folder. `orch run loop.py:retrain` trains
and promotes the champion (v1); `orch serve` answers predictions and logs requests;
`orch daemon loop.py` runs the drift monitor on that log and the triggers. Unshifted
requests are checked and not flagged; shifted requests are flagged, the `drift` event
starts `retrain` on the labelled (shifted) data, the challenger beats the champion on
the same test rows and is promoted, and the server answers with v2 without a restart.
A later retrain whose challenger is no better is registered but not promoted.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from orchtest import Orch, Project, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retraining"
MODEL = "cancer-classifier"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _json(orch: Orch, *args: str) -> dict[str, Any]:
    res = orch(*args, "--json")
    assert res.code == 0, res.describe()
    return res.json


def _versions(orch: Orch) -> dict[int, dict[str, Any]]:
    return {v["version"]: v for v in _json(orch, "models")["models"]}


def _server_version(url: str) -> int:
    with urllib.request.urlopen(url + "/model", timeout=10) as resp:
        return int(json.load(resp)["version"])


@pytest.fixture
def loop_project(project: Project) -> Project:
    for name in ("loop.py", "simulate.py"):
        shutil.copy(EXAMPLE / name, project.path(name))
    project.path("labelled").mkdir()
    project.path("feedback").mkdir()
    return project


def test_drift_retrains_and_the_server_swaps_to_a_better_model(
    orch: Orch, loop_project: Project, tmp_path: Path
) -> None:
    sys.path.insert(0, str(loop_project.root))
    try:
        import simulate
    finally:
        sys.path.remove(str(loop_project.root))

    first = orch.run("loop.py:retrain")
    assert first["status"] == "succeeded"
    assert _versions(orch)[1]["stage"] == "production"

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = orch.popen(
        "serve", MODEL, "--port", str(port), "--poll-interval", "0.2",
        "--request-log", str(loop_project.path("requests.jsonl")),
        log=tmp_path / "serve",
    )  # fmt: skip
    daemon = orch.popen("daemon", "loop.py", log=tmp_path / "daemon")
    try:
        wait_for(lambda: _up(url), "the server to answer", timeout=60)

        # Requests like the training data: checked, not flagged, nothing starts.
        simulate.post_requests(url, simulate.sample(150, shift=0.0, seed=7))
        checks = wait_for(lambda: _json(orch, "monitors")["checks"], "a first check")
        assert [c["drifted"] for c in checks] == [False], checks
        assert checks[0]["rows"] == 150

        # Labels for the new regime arrive, then the world drifts.
        simulate.sample(300, shift=4.0, seed=1).to_csv(
            loop_project.path("labelled/batch-1.csv"), index=False
        )
        assert set(simulate.post_requests(url, simulate.sample(150, shift=4.0, seed=8))) == {1}
        promoted = wait_for(
            lambda: _versions(orch).get(2, {}).get("stage") == "production",
            "the drift-triggered challenger to be promoted",
            timeout=120,
            interval=0.3,
        )
        assert promoted
        checks = _json(orch, "monitors")["checks"]
        assert checks[0]["drifted"] is True and checks[0]["event_id"] is not None
        report = _json(orch, "monitors", str(checks[0]["id"]))["report"]
        assert report["drifted_features"] == [simulate.FEATURE]
        event = next(e for e in _json(orch, "events")["events"] if e["name"] == "drift")
        run = orch.show(event["run_id"])
        assert run["trigger"]["kind"] == "event" and run["trigger"]["event"] == "drift"
        v2 = _versions(orch)[2]
        assert "beats champion v1" in v2["reason"], v2

        # The server swaps without a restart and answers with the new version.
        wait_for(lambda: _server_version(url) == 2, "the server to serve v2", timeout=30)
        assert set(simulate.post_requests(url, simulate.sample(50, shift=4.0, seed=9))) == {2}
        assert server.poll() is None

        # More labels of the same regime: the challenger is no better, so it stays a
        # candidate and production is unchanged.
        simulate.sample(300, shift=4.0, seed=2).to_csv(
            loop_project.path("labelled/batch-2.csv"), index=False
        )
        res = orch("event", "emit", "retrain")
        assert res.code == 0, res.describe()
        wait_for(lambda: 3 in _versions(orch), "the third version", timeout=120, interval=0.3)
        v3 = _versions(orch)[3]
        assert v3["stage"] == "candidate" and "kept champion v2" in v3["reason"], v3
        time.sleep(0.5)  # two poll intervals of the server
        assert _server_version(url) == 2
    finally:
        for proc in (daemon, server):
            proc.terminate()
        for proc in (daemon, server):
            proc.wait(timeout=60)
    assert "Traceback" not in (tmp_path / "daemon.err").read_text()


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False
