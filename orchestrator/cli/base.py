"""The `orch` application object, its shared options, and the workspace every command uses.

`ENV` is the one `orchestrator.config.Workspace` of the process, composed from `ORCH_HOME`,
`ORCH_DB_URL` and `ORCH_ARTIFACTS` when first used; commands live in `cli.app` (runs and
their results) and `cli.ops` (schedules, the daemon, events, monitors, serving, the UI,
images). `execute_graph` is how every command that runs a graph runs it (live progress,
step log lines on stderr, Ctrl-C). Nothing here opens anything at import.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.config import Workspace
from orchestrator.model.params import cli_overrides

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Typed-step ML pipelines with a content-hash cache and a SQL metadata store.",
)
cache_app = typer.Typer(no_args_is_help=True, help="Manage the cache and artifact store.")
app.add_typer(cache_app, name="cache")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
DaskOpt = Annotated[
    str | None,
    typer.Option(
        "--dask-address", help="Dask scheduler tcp://host:port (default: a LocalCluster)."
    ),
]
ImageOpt = Annotated[
    str | None,
    typer.Option("--image", help="Docker image for steps that name none (default: ORCH_IMAGE)."),
]


def _backend_options(dask_address: str | None, image: str | None) -> dict[str, Any]:
    return {"dask_address": dask_address, "image": image}


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE or STEP.KEY=VALUE.")
]
ExecutorOpt = Annotated[
    str, typer.Option("--executor", "-e", help="thread, process, sequential, dask or docker.")
]
ParamsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--params-file",
        help="A YAML, TOML or JSON file of parameters (nested keys: STEP.PARAM paths); "
        "--param wins over it.",
    ),
]


def _overrides(param: list[str] | None, params_file: Path | None = None) -> dict[str, Any]:
    """The run's parameter overrides, from every option of `run` that sets parameters."""
    return cli_overrides(param or [], params_file)


ENV = Workspace()
Env = Workspace  # the name scripts used before the composition moved to orchestrator.config


def execute_graph(
    graph: Any,
    *,
    target: str,
    executor: str,
    quiet: bool,
    options: dict[str, Any],
    trigger: dict[str, Any] | None = None,
    run_id: str | None = None,
    resumed_from: str | None = None,
    selection: Any = None,
) -> Any:
    """Run through the API with live progress (none if `quiet`) and log lines on stderr."""
    from orchestrator import api
    from orchestrator.cli.progress import Progress, json_log_printer, print_log_line
    from orchestrator.engine.selection import plan

    run_id = run_id or api.new_run_id()
    members = plan(graph, selection).members if selection else None
    progress = Progress(graph, quiet=quiet, steps=members)
    json_logs = os.environ.get("ORCH_LOG_FORMAT") == "json"
    on_log = json_log_printer(run_id, graph.pipeline) if json_logs else print_log_line
    try:
        with progress:
            result = api.execute(
                ENV, graph, target=target, executor=executor, listener=progress, on_log=on_log,
                run_id=run_id, resumed_from=resumed_from, trigger=trigger, options=options,
                selection=selection,
            )  # fmt: skip
    except KeyboardInterrupt:
        # the run is recorded as interrupted; steps still running in pool threads are
        # abandoned rather than awaited, so Ctrl-C ends the command at once
        typer.echo(
            f"interrupted: run {run_id} is recorded; resume it with `orch resume {run_id}`",
            err=True,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        ENV.close()
        os._exit(130)
    return result


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
