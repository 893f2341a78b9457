"""`orch reproduce MODEL:VERSION [--verify] [--image]`: rebuild a model version from its lineage.

The work is `orchestrator.reproduce`; this module parses `MODEL:VERSION` (a number, `v3`,
an alias, or `production` when the version is left out) and prints the verdict. A model
or version that does not exist, a package mismatch, a missing input or a failed rebuild
is one `error:` line (exit 2); a rebuild that differs from the original exits 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.base import JsonOpt, _json, app
from orchestrator.cli.progress import out
from orchestrator.cli.registry import _registry
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.reproduce import Outcome, StepCheck


def parse_ref(ref: str) -> tuple[str, str]:
    """(`model`, `selector`) of `MODEL:VERSION` (`MODEL` alone: production)."""
    name, _, selector = ref.partition(":")
    if not name:
        raise OrchestratorError(f"'{ref}' names no model: give MODEL:VERSION, e.g. iris:3")
    return name, selector or "production"


def _short(hashes: list[str]) -> str:
    return ", ".join(h[:12] for h in hashes) or "none"


def _row(check: StepCheck) -> tuple[str, ...]:
    if check.identical:
        return (check.step, "identical", _short(check.original), "")
    rebuilt = f"{_short(check.original)} -> {_short(check.rebuilt)}"
    return (check.step, str(check.reason), rebuilt, check.detail)


def print_outcome(outcome: Outcome, verify: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    p = outcome.plan
    typer.echo(
        f"rebuilt {p.label} from run {p.version.run_id} in a temporary store "
        f"({len(p.steps)} steps, {len(p.sources)} source files from the snapshot)"
    )
    if outcome.image is not None:
        pins = ", ".join(f"{n}=={v}" for n, v in outcome.pins.items()) or "none needed"
        typer.echo(f"ran in image {outcome.image} (pinned: {pins})")
    for line in outcome.packages:
        typer.echo(f"warning: package differs from the run's: {line}")
    if verify:
        table = Table()
        for col in ("step", "verdict", "artifacts", "why"):
            table.add_column(col)
        for check in outcome.steps:
            table.add_row(*(Text(c) for c in _row(check)))
        out.print(table)
        typer.echo(outcome.verdict)
        return
    model = outcome.steps[-1]
    same = "identical to" if model.identical else "differs from"
    typer.echo(f"model artifact {_short(model.rebuilt)} {same} the registered one")


def _base_image(option: str | None) -> str:
    import os

    base = option or os.environ.get("ORCH_IMAGE")
    if not base:
        raise OrchestratorError(
            "--image needs a base image holding the orchestrator: pass --base-image or set "
            "ORCH_IMAGE (make one with `orch image build --tag TAG`)"
        )
    return base


@app.command("reproduce")
def reproduce_cmd(
    ref: Annotated[str, typer.Argument(help="MODEL:VERSION (3, v3 or an alias).")],
    verify: Annotated[
        bool, typer.Option("--verify", help="Compare every artifact along the lineage.")
    ] = False,
    ignore_packages: Annotated[
        bool,
        typer.Option("--ignore-packages", help="Rebuild even if package versions differ."),
    ] = False,
    image: Annotated[
        bool,
        typer.Option(
            "--image",
            help="Rebuild on the Docker executor in an image holding the recorded package "
            "versions (built from the base image, then reused).",
        ),
    ] = False,
    base_image: Annotated[
        str | None,
        typer.Option(
            "--base-image",
            help="With --image: the image to add the recorded versions to (default: ORCH_IMAGE).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild a model version from its lineage (snapshotted code, same params and data)."""
    from orchestrator.reproduce import reproduce

    name, selector = parse_ref(ref)
    base = _base_image(base_image) if image else None
    outcome = reproduce(
        _registry(name),
        name,
        selector,
        ignore_packages=ignore_packages,
        image=base,
        log=lambda m: typer.echo(m, err=True),
    )
    if as_json:
        print(_json(outcome.to_json()))
    else:
        print_outcome(outcome, verify)
    if not outcome.identical:
        raise typer.Exit(1)
