"""The engine honours a cancel request recorded in its store (a real SQLite store): a
step waiting for its retry's backoff is dropped at once, and the run and that step are
recorded `cancelled` / `interrupted`, the failed attempt kept."""

from __future__ import annotations

import threading
import time

from orchestrator import pipeline, step
from orchestrator.engine.loop import Engine, RunResult


@step(retries=3, retry_backoff=60)
def always_fails() -> int:
    raise ValueError("nope")


@step
def after(x: int) -> int:
    return x


@pipeline
def patient():
    after(always_fails())


def test_a_step_waiting_for_its_retry_is_dropped_and_the_run_cancelled(engine: Engine) -> None:
    got: list[RunResult] = []
    runner = threading.Thread(
        target=lambda: got.append(engine.run(patient.build(), target="T", run_id="r1"))
    )
    runner.start()
    store = engine.store

    def first_attempt_failed() -> bool:
        return [a["state"] for a in store.attempts("r1")] == ["failed"]

    deadline = time.monotonic() + 30
    while not first_attempt_failed():
        assert time.monotonic() < deadline, "the first attempt never failed"
        time.sleep(0.02)
    t0 = time.monotonic()
    assert store.request_cancel("r1")
    runner.join(timeout=30)
    took = time.monotonic() - t0
    assert not runner.is_alive()
    result = got[0]
    assert result.status == "cancelled"
    assert {s.name: s.state for s in result.steps} == {"always_fails": "interrupted"}
    assert took < 5, took  # not the 60 s backoff
    assert store.get_run("r1")["status"] == "cancelled"
    rows = {r["name"]: r for r in store.step_runs("r1")}
    assert rows["always_fails"]["state"] == "interrupted" and "after" not in rows
    assert [a["error"] for a in store.attempts("r1")] == ["ValueError: nope"]
