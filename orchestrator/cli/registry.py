"""`orch` commands for the model registry: list versions, promote, set aliases, and read
a model's audit trail.

Every change goes through `StoreRegistry` with `actor="cli"`, so it is one recorded event
(who, when, from -> to, reason). A model, version or alias that does not exist is one
`error:` line naming it (exit 2), never a traceback.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.base import ENV, JsonOpt, _json, app
from orchestrator.cli.progress import out
from orchestrator.errors import NotFound, OrchestratorError, did_you_mean

ReasonOpt = Annotated[str, typer.Option("--reason", help="Why: recorded in the audit trail.")]
_VERSION = re.compile(r"^v?([0-9]{1,9})$")


def _registry(name: str) -> Any:
    """The registry, once `name` is known to be a registered model."""
    registry = ENV.registry()
    names = {v.name for v in registry.versions()}
    if name not in names:
        raise NotFound(f"no model '{name}' is registered{did_you_mean(name, names)}")
    return registry


def _number(name: str, text: str) -> int:
    got = _VERSION.match(text)
    if got is None:
        raise OrchestratorError(f"model '{name}': version '{text}' is not a number like 3 or v3")
    return int(got.group(1))


@app.command()
def models(
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    events: Annotated[
        bool, typer.Option("--events", help="The model's audit trail, newest first.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Registered model versions, their stages, aliases and metrics (or `--events`)."""
    from orchestrator.cli.render import print_models

    if events:
        if name is None:
            raise OrchestratorError("--events needs a model name: orch models NAME --events")
        print_events(_registry(name).events(name), as_json)
        return
    registry = _registry(name) if name else ENV.registry()
    print_models(registry.versions(name), as_json)


@app.command()
def promote(
    model: Annotated[str, typer.Argument(help="A registered model name.")],
    version: Annotated[str, typer.Argument(help="The version to make production (3 or v3).")],
    reason: ReasonOpt = "promoted from the command line",
) -> None:
    """Make a version production (the previous one is archived); both changes are recorded."""
    registry = _registry(model)
    number = _number(model, version)
    before = registry.production(model)
    got = registry.promote(model, number, reason, actor="cli")
    if before is not None and before.version == got.version:
        typer.echo(f"{model} v{got.version} is production already")
        return
    was = f" (v{before.version} archived)" if before is not None else ""
    typer.echo(f"{model} v{got.version} is production{was}")


@app.command()
def alias(
    model: Annotated[str, typer.Argument(help="A registered model name.")],
    name: Annotated[str, typer.Argument(help="The alias, e.g. champion or staging.")],
    version: Annotated[
        str | None, typer.Argument(help="The version it points at (none: show it).")
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    reason: ReasonOpt = "",
) -> None:
    """Point an alias at a version (`orch serve MODEL@ALIAS` serves it), show or remove it."""
    registry = _registry(model)
    if delete:
        registry.set_alias(model, name, None, reason, actor="cli")
        typer.echo(f"{model}@{name} removed")
        return
    if version is None:
        typer.echo(f"{model}@{name} -> v{registry.resolve(model, name).version}")
        return
    old = registry.set_alias(model, name, _number(model, version), reason, actor="cli")
    moved = f" (was v{old})" if old is not None else ""
    typer.echo(f"{model}@{name} -> v{_number(model, version)}{moved}")


def actor_text(e: dict[str, Any]) -> str:
    if e["actor"] == "deploy" and e["run_id"]:
        return f"deploy step '{e['step']}' of run {e['run_id']}"
    return str(e["actor"])


def print_events(events: list[dict[str, Any]], as_json: bool) -> None:
    from orchestrator.store.registry import change_text  # the store loads on first use

    if as_json:
        print(_json({"events": events}))
        return
    table = Table()
    for col in ("when (UTC)", "version", "change", "by", "reason"):
        table.add_column(col)
    for e in events:
        when = e["created_at"].strftime("%Y-%m-%d %H:%M:%S")
        cells = (when, f"v{e['version']}", change_text(e), actor_text(e), e["reason"])
        table.add_row(*(Text(c) for c in cells))  # a reason is plain text, never markup
    out.print(table)
