"""`orch CMD` imports only the module that registers CMD: the map saying which module
that is must name every command, in the module that really registers it."""

from __future__ import annotations

import importlib
import subprocess
import sys

import typer

from orchestrator.cli import app as cli


def _registered_by(statement: str) -> set[str]:
    """The names a fresh process's `app` gains by `statement` after importing `cli.app`."""
    code = (
        "import orchestrator.cli.app as a, importlib, sys\n"
        "before = a.command_names(a.app)\n"
        f"{statement}\n"
        "print(' '.join(sorted(a.command_names(a.app) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_each_module_registers_the_commands_the_map_gives_it() -> None:
    everything = {n for names in cli.ELSEWHERE.values() for n in names}
    for module, names in cli.ELSEWHERE.items():
        got = _registered_by(f"importlib.import_module({module!r})")
        assert set(names) <= got <= everything, module  # (a module may import another)


def test_loading_one_command_registers_it() -> None:
    for names in cli.ELSEWHERE.values():
        for name in names:
            assert name in _registered_by(f"a.load_commands([{name!r}, '--help'])"), name
    assert _registered_by("a.load_commands(['run', 'classification'])") == set()


def test_no_command_is_both_in_the_app_module_and_elsewhere() -> None:
    code = "import orchestrator.cli.app as a; print(' '.join(sorted(a.command_names(a.app))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    own = set(out.stdout.split())
    assert {"run", "runs", "show", "cache", "kinds"} <= own
    elsewhere = {n for names in cli.ELSEWHERE.values() for n in names}
    assert not own & elsewhere, sorted(own & elsewhere)


def test_loading_every_module_registers_every_command() -> None:
    cli.load_commands()
    for module in cli.ELSEWHERE:
        importlib.import_module(module)
    names = cli.command_names(cli.app)
    assert {n for ns in cli.ELSEWHERE.values() for n in ns} <= names
    group = typer.main.get_command(cli.app)
    assert set(group.commands) == names  # type: ignore[attr-defined]
