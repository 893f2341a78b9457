"""The `orch` application object, its shared options, and the workspace every command uses.

`ENV` is the one `orchestrator.config.Workspace` of the process, composed from `ORCH_HOME`,
`ORCH_DB_URL` and `ORCH_ARTIFACTS` when first used; commands live in `cli.app` (runs and
their results) and `cli.ops` (schedules, the daemon, events, monitors, serving, the UI,
images). Nothing here opens anything at import.
"""

from __future__ import annotations

import json
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


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
