"""A fully cached `orch run classification` imports none of its steps' libraries.

The command runs as a user types it, in a subprocess with `PYTHONPROFILEIMPORTTIME=1`
(Python's `-X importtime`), whose stderr lists every module the process imported.
"""

from __future__ import annotations

import re

from orchtest import Orch, Project, states

STEPS = ["ingest", "validate", "features", "train", "evaluate", "deploy"]
HEAVY = {"sklearn", "scipy", "pandas"}


def _imported(orch: Orch, *args: str) -> tuple[dict[str, str], set[str]]:
    """(step states, top-level packages imported) of `orch run ... --json`."""
    env = orch.env
    orch.env = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
    try:
        res = orch("run", *args, "--json")
    finally:
        orch.env = env
    assert res.code == 0, res.describe()
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", res.err, re.MULTILINE)
    assert names, res.describe()
    return states(res.json), {n.split(".")[0] for n in names}


def test_a_cached_run_loads_no_step_library(orch: Orch, project: Project) -> None:
    first, loaded = _imported(orch, "classification")
    assert first == dict.fromkeys(STEPS, "succeeded")
    assert loaded >= HEAVY  # the steps ran, so their libraries were imported

    cached, loaded = _imported(orch, "classification")
    assert cached == dict.fromkeys(STEPS, "cached")
    assert not loaded & HEAVY, sorted(loaded & HEAVY)
    assert {"orchestrator", "sqlalchemy"} <= loaded
