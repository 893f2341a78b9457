"""A pipeline of plain parameters (int, float, str, bool) is built and its parameters
validated without importing pydantic: a value of its hint's own plain type is what
pydantic would return. Any other value or hint still goes through pydantic, with its
coercions and its error text."""

from __future__ import annotations

import json
import subprocess
import sys

CODE = """
import json, sys
from orchestrator import pipeline, step

@step
def fit(C: float = 1.0, name: str = "m", deep: bool = False, k: int = 3) -> float:
    return C

@pipeline
def plain(C: float = 1.0, k: int = 3) -> None:
    fit(C=C, k=k, name="x", deep=True)

plain.build({"C": 0.5, "k": 4})
before = "pydantic" in sys.modules
graph = plain.build({"C": 2, "k": "5"})  # an int for a float, text for an int: coerced
params = graph.params
try:
    plain.build({"k": "five"})
    error = None
except Exception as exc:
    error = str(exc)
print(json.dumps({"before": before, "after": "pydantic" in sys.modules,
                  "C": params["C"], "k": params["k"], "error": error}))
"""


def test_plain_parameters_need_no_pydantic_and_others_still_use_it() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"] is False
    assert out["after"] is True
    assert out["C"] == 2.0 and isinstance(out["C"], float)
    assert out["k"] == 5
    assert "k" in out["error"] and "five" in out["error"]
