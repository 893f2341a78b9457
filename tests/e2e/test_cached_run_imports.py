"""A fully cached `orch run classification` imports none of its steps' libraries.

The command runs as a user types it, in a subprocess with `PYTHONPROFILEIMPORTTIME=1`
(Python's `-X importtime`), whose stderr lists every module the process imported.
"""

from __future__ import annotations

import re
from typing import Any

from orchtest import Orch, Project, states

STEPS = ["ingest", "validate", "features", "train", "evaluate", "deploy"]
HEAVY = {"sklearn", "scipy", "pandas"}
# Not the steps' libraries, but nothing a cache hit needs either: loaded on demand only.
NOT_ON_A_HIT = HEAVY | {"networkx", "alembic"}


def _run_importing(orch: Orch, *args: str) -> tuple[Any, set[str]]:
    """(result, top-level packages imported) of `orch run ...`."""
    res, names = _run_modules(orch, *args)
    return res, {n.split(".")[0] for n in names}


def _run_modules(orch: Orch, *args: str) -> tuple[Any, set[str]]:
    """(result, every module imported) of `orch run ...`."""
    env = orch.env
    orch.env = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    try:
        res = orch("run", *args)
    finally:
        orch.env = env
    assert res.code == 0, res.describe()
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", res.err, re.MULTILINE)
    assert names, res.describe()
    return res, set(names)


def _imported(orch: Orch, *args: str) -> tuple[dict[str, str], set[str]]:
    """(step states, top-level packages imported) of `orch run ... --json`."""
    res, loaded = _run_importing(orch, *args, "--json")
    return states(res.json), loaded


def test_a_cached_run_loads_no_step_library(orch: Orch, project: Project) -> None:
    first, loaded = _imported(orch, "classification")
    assert first == dict.fromkeys(STEPS, "succeeded")
    assert loaded >= HEAVY  # the steps ran, so their libraries were imported

    cached, loaded = _imported(orch, "classification")
    assert cached == dict.fromkeys(STEPS, "cached")
    assert not loaded & NOT_ON_A_HIT, sorted(loaded & NOT_ON_A_HIT)
    assert "orchestrator" in loaded  # (--json reads what runs tracked through SQLAlchemy)


def test_the_printed_cached_run_loads_nothing_it_does_not_need(orch: Orch) -> None:
    """The command as typed (progress lines and the table, no --json) on a cache hit."""
    _run_importing(orch, "classification")
    res, loaded = _run_importing(orch, "classification")
    assert "classification  succeeded" in res.out, res.describe()
    assert res.out.count(" cached ") >= len(STEPS), res.describe()
    assert not loaded & NOT_ON_A_HIT, sorted(loaded & NOT_ON_A_HIT)
    # a SQLite store at the schema head serves the run through the raw sqlite3 path
    assert "sqlalchemy" not in loaded, sorted(loaded)


def test_help_opens_no_store(orch: Orch) -> None:
    """`orch --help` lists the commands without loading the metadata store's libraries."""
    env = orch.env
    orch.env = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    try:
        res = orch("--help")
    finally:
        orch.env = env
    assert res.code == 0, res.describe()
    assert " run " in res.out and " promote " in res.out, res.describe()
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", res.err, re.MULTILINE)
    loaded = {n.split(".")[0] for n in names}
    assert "typer" in loaded, res.describe()
    assert not loaded & (NOT_ON_A_HIT | {"sqlalchemy", "alembic"}), sorted(loaded)


def test_a_run_imports_no_other_command_module(orch: Orch) -> None:
    """`orch run` builds only its own command: the sweep, registry and operations
    commands' modules (and what only they need) stay unloaded."""
    _run_importing(orch, "classification")
    res, names = _run_modules(orch, "classification")
    assert "orchestrator.cli.app" in names, res.describe()
    others = {"orchestrator.cli.ops", "orchestrator.cli.registry", "orchestrator.cli.sweep",
              "orchestrator.cli.reproduce"}  # fmt: skip
    assert not names & others, sorted(names & others)


def test_a_cached_run_reads_the_steps_source_from_the_definition_records(orch: Orch) -> None:
    """A run keeps the definitions it read in `$ORCH_HOME/cache/definitions`; a cached run
    of unchanged code finds every one there, so it rewrites none of them."""
    _run_importing(orch, "classification")
    folder = orch.home / "cache" / "definitions"
    records = {p: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    assert records, f"no definition records in {folder}"
    res, _ = _run_importing(orch, "classification")
    assert res.out.count(" cached ") >= len(STEPS), res.describe()
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*.json")} == records
