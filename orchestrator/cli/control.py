"""`orch cancel RUN`: ask a running run to stop, and optionally wait until it has.

The request is a stamp on the run's row (`MetadataStore.request_cancel`); the process
running it polls the stamp (engine/cancel.py), kills its running steps and records the
run `cancelled`. A run that is not running cannot be cancelled: one error line says
what it is instead. A run whose process is gone is found interrupted by the read, so
cancelling it says so rather than waiting for a process that will never answer.
"""

from __future__ import annotations

import time

import typer

from orchestrator.errors import OrchestratorError
from orchestrator.state import RunStatus
from orchestrator.store.metadata import MetadataStore

POLL = 0.1


def cancel_run(store: MetadataStore, run_id: str, wait: float) -> None:
    run = store.get_run(run_id)
    if run["status"] != RunStatus.RUNNING or not store.request_cancel(run["id"]):
        status = store.get_run(run["id"])["status"]
        raise OrchestratorError(
            f"run {run['id']} is {status}, not running: there is nothing to cancel"
            + (f" (resume it with `orch resume {run['id']}`)" if status != "succeeded" else "")
        )
    if wait <= 0:
        typer.echo(f"cancel requested: run {run['id']} stops at its next check (within 1s)")
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        status = store.get_run(run["id"])["status"]
        if status != RunStatus.RUNNING:
            typer.echo(f"run {run['id']} is {status}")
            return
        time.sleep(POLL)
    raise OrchestratorError(
        f"run {run['id']} was asked to stop but is still running after {wait:g}s"
    )
