"""Invalid pipelines and invalid command lines: one clear `error: ...` on stderr, exit 2.

Each case is its own pipeline file in the user's project. Nothing may run, and no
Python traceback may reach the user.
"""

from __future__ import annotations

import pytest
from orchtest import DEMO_HELPERS, DEMO_PIPELINE, Orch, Project

HEADER = """
from pydantic import BaseModel

from orchestrator import pipeline, step


class Stats(BaseModel):
    mean: float


@step(kind="ingest")
def load(n: int = 3) -> list[int]:
    return list(range(n))


@step(kind="feature")
def double(xs: list[int], k: int = 2) -> list[int]:
    return [x * k for x in xs]


@step(kind="evaluate")
def stats(xs: list[int]) -> Stats:
    return Stats(mean=sum(xs) / len(xs))


@step
def use(n: int) -> int:
    return n


@step
def one() -> int:
    return 1
"""

# only the case that needs them pays for importing pandas and scikit-learn
ML_HEADER = """
import pandas as pd
from sklearn.base import BaseEstimator


@step(kind="ingest")
def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, 2.0]})


@step(kind="train")
def fit(model: BaseEstimator) -> int:
    return 1
"""

# name -> (pipeline body, expected fragments of the error message)
BODIES: dict[str, tuple[str, list[str]]] = {
    "unknown-argument": (
        "double(load(), kk=3)",
        ["step 'double' has no input or parameter 'kk'", "did you mean 'k'"],
    ),
    "missing-input": (
        "load()\n    double()",
        ["step 'double' is missing required input", "'xs'"],
    ),
    "dataframe-into-estimator": (
        "fit(frame())",
        [
            "type mismatch",
            "step 'frame' outputs pandas.DataFrame",
            "step 'fit' input 'model' expects sklearn.BaseEstimator",
        ],
    ),
    "pydantic-model-into-int": (
        "use(stats(load()))",
        ["type mismatch", "Stats", "step 'use' input 'n' expects int"],
    ),
    "duplicate-names": (
        'one(_name="x")\n    one(_name="x")',
        ["duplicate step name 'x'"],
    ),
    "bad-step-parameter": (
        'load(n="many")',
        ["step 'load' parameter 'n'", "expected int"],
    ),
    "several-problems": (
        "double(load(), kk=3)\n    use(stats(load()))",
        ["(2 problems)", "has no input or parameter 'kk'", "type mismatch"],
    ),
}


@pytest.mark.parametrize("case", list(BODIES))
def test_invalid_pipeline_is_rejected_before_running(
    orch: Orch, project: Project, case: str
) -> None:
    body, fragments = BODIES[case]
    header = HEADER + (ML_HEADER if "frame()" in body else "")
    project.write("bad.py", header + f"\n\n@pipeline\ndef bad():\n    {body}\n")
    res = orch("run", "bad.py:bad", "--json")
    assert res.code == 2, res.describe()
    assert res.out == ""
    assert res.err.startswith("error: "), res.err
    assert "pipeline 'bad' is invalid" in res.err
    for fragment in fragments:
        assert fragment in res.err, res.describe()
    assert "Traceback" not in res.err
    assert not orch.db.exists() or orch.runs() == []


@pytest.fixture
def demo(project: Project) -> Project:
    project.write("helpers.py", DEMO_HELPERS)
    project.write("pipe.py", DEMO_PIPELINE)
    return project


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--param", "n=abc"], ["pipeline 'demo' parameter 'n'", "expected int", "'abc'"]),
        (["--param", "nope=1"], ["pipeline 'demo' has no parameter 'nope'"]),
        (["--param", "kk=1"], ["has no parameter 'kk'", "did you mean 'k'"]),
        (["--param", "dubble.k=3"], ["has no step 'dubble'", "did you mean 'double'"]),
        (["--param", "double.kk=3"], ["step 'double' has no parameter 'kk'", "did you mean 'k'"]),
        (["--param", "double.xs=[1]"], ["'xs' is an input fed by step 'load'"]),
        (["--param", "double.k=abc"], ["step 'double' parameter 'k'", "expected int"]),
        (["--param", "n"], ["--param expects KEY=VALUE"]),
        (["--executor", "bogus"], ["unknown executor 'bogus'"]),
    ],
    ids=[
        "bad-int",
        "unknown-param",
        "typo-param",
        "unknown-step",
        "unknown-step-param",
        "param-is-an-input",
        "bad-step-param",
        "no-equals",
        "unknown-executor",
    ],
)
def test_invalid_command_line(
    orch: Orch, demo: Project, args: list[str], fragments: list[str]
) -> None:
    res = orch("run", "pipe.py:demo", "--json", *args)
    assert res.code == 2, res.describe()
    assert res.out == ""
    assert res.err.startswith("error: "), res.err
    for fragment in fragments:
        assert fragment in res.err, res.describe()
    assert "Traceback" not in res.err
    assert not orch.db.exists() or orch.runs() == []


@pytest.mark.parametrize(
    ("target", "files", "fragments"),
    [
        (
            "classifcation",
            {},
            ["no built-in pipeline 'classifcation'", "did you mean 'classification'"],
        ),
        ("nothere.py:demo", {}, ["pipeline file not found", "nothere.py"]),
        (
            "ok.py:nope",
            {"ok.py": "from orchestrator import pipeline\n\n\n@pipeline\ndef demo():\n    pass\n"},
            ["has no pipeline 'nope'", "demo"],
        ),
        ("ok.py:helper", {"ok.py": "def helper():\n    return 1\n"}, ["not a @pipeline function"]),
        (
            "syntax.py:p",
            {
                "syntax.py": "from orchestrator import step\n\n\n@step\n"
                "def a(x: int) -> int\n    return x\n"
            },
            ["syntax.py", "line 5", "SyntaxError"],
        ),
        (
            "imports.py:p",
            {"imports.py": "import os\nimport no_such_module_here\n"},
            ["imports.py", "line 2", "No module named 'no_such_module_here'"],
        ),
        (
            "kind.py:p",
            {
                "kind.py": "from orchestrator import step\n\n\n@step(kind='trian')\n"
                "def a() -> int:\n    return 1\n"
            },
            ["kind 'trian' is not one of"],
        ),
        (
            "nodefault.py:p",
            {
                "nodefault.py": "from orchestrator import pipeline\n\n\n"
                "@pipeline\ndef p(n: int):\n    pass\n"
            },
            # an argument without a default is an input: only a caller can bind it
            ["pipeline 'p' has input(s) 'n'", "can only be called inside another pipeline"],
        ),
    ],
    ids=[
        "unknown-builtin",
        "missing-file",
        "unknown-function",
        "not-a-pipeline",
        "syntax-error",
        "import-error",
        "unknown-kind",
        "param-without-default",
    ],
)
def test_unloadable_target(
    orch: Orch, project: Project, target: str, files: dict[str, str], fragments: list[str]
) -> None:
    for name, text in files.items():
        project.write(name, text)
    res = orch("run", target, "--json")
    assert res.code == 2, res.describe()
    assert res.err.startswith("error: "), res.err
    for fragment in fragments:
        assert fragment in res.err, res.describe()
    assert "Traceback" not in res.err


def test_graph_of_an_invalid_pipeline_is_rejected_too(orch: Orch, project: Project) -> None:
    project.write("bad.py", HEADER + "\n\n@pipeline\ndef bad():\n    use(stats(load()))\n")
    res = orch("graph", "bad.py:bad")
    assert res.code == 2, res.describe()
    assert "type mismatch" in res.err and "Traceback" not in res.err


def test_unknown_run_in_show_and_explain(orch: Orch, project: Project) -> None:
    for args in (["show", "abc123"], ["explain", "abc123", "train"]):
        res = orch(*args)
        assert res.code == 2, res.describe()
        assert "no run 'abc123'" in res.err and "Traceback" not in res.err
