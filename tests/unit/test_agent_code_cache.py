"""The warm container agent's compiled user code, in real forked children on this host.

The agent compiles (never runs) the user's files its attempts had to compile and keeps
the code with the file's exact bytes; a child takes that code only for the same bytes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from orchestrator.execution import agent


def _in_child(path: Path) -> dict[str, Any]:
    """Import `path` in a forked child as the agent's child does; what it compiled and
    the module's `VALUE`."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            compiled: list[str] = []
            agent._code_from_agent(compiled)
            spec = importlib.util.spec_from_file_location("agent_cached_module", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            os.write(write, json.dumps({"compiled": compiled, "value": module.VALUE}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return dict(json.loads(data))


def test_a_child_takes_the_agents_code_only_for_the_very_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "user_step.py"
    path.write_text("VALUE = 'one'\n")
    before, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no bytecode beside it
    try:
        assert _in_child(path) == {"compiled": [str(path)], "value": "one"}
        agent._compile(str(path))
        assert _in_child(path) == {"compiled": [], "value": "one"}  # the agent's code
        path.write_text("VALUE = 'two'\n")  # the same size: only the bytes tell
        assert _in_child(path) == {"compiled": [str(path)], "value": "two"}
        agent._compile(str(path))
        assert _in_child(path) == {"compiled": [], "value": "two"}
    finally:
        sys.dont_write_bytecode = before
        agent._CODE.pop(str(path), None)


def test_a_file_that_does_not_compile_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "broken_step.py"
    path.write_text("def (:\n")
    agent._compile(str(path))
    assert str(path) not in agent._CODE
    agent._compile(str(tmp_path / "missing.py"))
    assert str(tmp_path / "missing.py") not in agent._CODE
