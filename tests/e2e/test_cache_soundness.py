"""Cache soundness: every edit that changes a step's output re-runs it, or is reported.

A table of edit kinds. Each case is a small project (`pipe.py:flow`, one step `compute`
whose output depends on the construct under test), an edit that changes that output,
and what the second run must show through the CLI:

* `RERUN`: `compute` runs again and `orch explain` names the changed component;
* `REPORTED`: the fingerprint cannot see the construct, so `orch explain` says what it
  did not follow (on a hit as on a miss), instead of hitting silently.
"""

from __future__ import annotations

import dataclasses

import pytest
from orchtest import Orch, Project, states, step_of

RERUN, REPORTED = "re-runs and explain names it", "reported as not followed"

PIPE_HEAD = """
from orchestrator import pipeline, step
"""

PIPE_TAIL = """

@pipeline
def flow():
    compute()
"""


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str]
    edit: tuple[str, str, str]  # file, old, new
    expect: str
    names: tuple[str, ...]  # substrings `orch explain` must show after the edit
    state: str = "succeeded"  # the state of `compute` after the edit


def pipe(body: str, head: str = "") -> str:
    return PIPE_HEAD + head + "\n\n@step\ndef compute() -> int:\n" + body + PIPE_TAIL


CASES = [
    Case(
        "partial-target",
        {
            "helpers.py": "def mul(x, k):\n    return x * k\n",
            "pipe.py": pipe(
                "    return TRIPLE(2)",
                "import functools\nfrom helpers import mul\nTRIPLE = functools.partial(mul, k=3)",
            ),
        },
        ("helpers.py", "return x * k", "return x * k + 1"),
        RERUN,
        ("code changed: function helpers.mul",),
    ),
    Case(
        "partial-keyword",
        {
            "helpers.py": "def mul(x, k):\n    return x * k\n",
            "pipe.py": pipe(
                "    return TRIPLE(2)",
                "import functools\nfrom helpers import mul\nTRIPLE = functools.partial(mul, k=3)",
            ),
        },
        ("pipe.py", "k=3", "k=4"),
        RERUN,
        ("pipe.TRIPLE",),
    ),
    Case(
        "instance-method",
        {
            "helpers.py": (
                "class Scaler:\n    def __init__(self, f):\n        self.f = f\n\n"
                "    def apply(self, x):\n        return x * self.f\n"
            ),
            "pipe.py": pipe(
                "    return SCALER.apply(3)", "from helpers import Scaler\nSCALER = Scaler(2)"
            ),
        },
        ("helpers.py", "return x * self.f", "return x * self.f + 1"),
        RERUN,
        ("code changed: class helpers.Scaler",),
    ),
    Case(
        "instance-state",
        {
            "helpers.py": (
                "class Scaler:\n    def __init__(self, f):\n        self.f = f\n\n"
                "    def apply(self, x):\n        return x * self.f\n"
            ),
            "pipe.py": pipe(
                "    return SCALER.apply(3)", "from helpers import Scaler\nSCALER = Scaler(2)"
            ),
        },
        ("pipe.py", "Scaler(2)", "Scaler(5)"),
        RERUN,
        ("code changed: constant pipe.SCALER.f",),
    ),
    Case(
        "import-in-body",
        {
            "helpers.py": "def value():\n    return 1\n",
            "pipe.py": pipe("    import helpers\n\n    return helpers.value()"),
        },
        ("helpers.py", "return 1", "return 2"),
        RERUN,
        ("code changed: function helpers.value",),
    ),
    Case(
        "from-import-in-body",
        {
            "helpers.py": "def value():\n    return 1\n",
            "pipe.py": pipe("    from helpers import value\n\n    return value()"),
        },
        ("helpers.py", "return 1", "return 2"),
        RERUN,
        ("code changed: function helpers.value",),
    ),
    Case(
        "two-level-module-attribute",
        {
            "subpkg/__init__.py": "from . import inner\n",
            "subpkg/inner.py": "def triple(x):\n    return 3 * x\n",
            "pipe.py": pipe("    return subpkg.inner.triple(2)", "import subpkg"),
        },
        ("subpkg/inner.py", "return 3 * x", "return 3 * x + 1"),
        RERUN,
        ("code changed: function subpkg.inner.triple",),
    ),
    Case(
        "wraps-decorated-helper",
        {
            "helpers.py": (
                "import functools\n\n\ndef deco(fn):\n    @functools.wraps(fn)\n"
                "    def wrapper(*a):\n        return fn(*a)\n\n    return wrapper\n\n\n"
                "@deco\ndef base(x):\n    return x + 1\n"
            ),
            "pipe.py": pipe("    return base(1)", "from helpers import base"),
        },
        ("helpers.py", "return x + 1", "return x + 2"),
        RERUN,
        ("code changed: function helpers.base",),
    ),
    Case(
        "wrapper-body",
        {
            "helpers.py": (
                "import functools\n\n\ndef deco(fn):\n    @functools.wraps(fn)\n"
                "    def wrapper(*a):\n        return fn(*a)\n\n    return wrapper\n\n\n"
                "@deco\ndef base(x):\n    return x + 1\n"
            ),
            "pipe.py": pipe("    return base(1)", "from helpers import base"),
        },
        ("helpers.py", "return fn(*a)", "return fn(*a) * 10"),
        RERUN,
        ("code changed: function helpers.deco.<locals>.wrapper",),
    ),
    Case(
        "lru-cache-helper",
        {
            "helpers.py": (
                "import functools\n\n\n@functools.lru_cache\ndef base(x):\n    return x + 1\n"
            ),
            "pipe.py": pipe("    return base(1)", "from helpers import base"),
        },
        ("helpers.py", "return x + 1", "return x + 2"),
        RERUN,
        ("code changed: function helpers.base",),
    ),
    Case(
        "module-level-lambda",
        {
            "helpers.py": "double = lambda x: x * 2\nhalf = lambda x: x // 2\n",
            "pipe.py": pipe("    return helpers.double(3) + helpers.half(4)", "import helpers"),
        },
        ("helpers.py", "x * 2", "x * 3"),
        RERUN,
        ("code changed: function helpers.double",),
    ),
    Case(
        "staticmethod",
        {
            "helpers.py": (
                "class Ops:\n    FACTOR = 2\n\n"
                "    @staticmethod\n    def s(x):\n        return x + 1\n\n"
                "    @classmethod\n    def c(cls, x):\n        return x * cls.FACTOR\n"
            ),
            "pipe.py": pipe("    return Ops.s(1) + Ops.c(1)", "from helpers import Ops"),
        },
        ("helpers.py", "return x + 1", "return x + 5"),
        RERUN,
        ("code changed: class helpers.Ops",),
    ),
    Case(
        "classmethod-bound-at-module-level",
        {
            "helpers.py": (
                "class Ops:\n    FACTOR = 2\n\n"
                "    @classmethod\n    def c(cls, x):\n        return x * cls.FACTOR\n\n\n"
                "make = Ops.c\n"
            ),
            "pipe.py": pipe("    return make(1)", "from helpers import make"),
        },
        ("helpers.py", "FACTOR = 2", "FACTOR = 7"),
        RERUN,
        ("helpers.Ops",),
    ),
    Case(
        "class-attribute-set-outside-the-class",
        {
            "helpers.py": (
                "class Ops:\n    @classmethod\n"
                "    def c(cls, x):\n        return x * cls.FACTOR\n\n\n"
                "Ops.FACTOR = 2\n"
            ),
            "pipe.py": pipe("    return Ops.c(1)", "from helpers import Ops"),
        },
        ("helpers.py", "Ops.FACTOR = 2", "Ops.FACTOR = 3"),
        RERUN,
        ("code changed: constant helpers.Ops.FACTOR",),
    ),
    Case(
        "dataclass-default-factory",
        {
            "helpers.py": (
                "import dataclasses\n\n\ndef default_scale():\n    return 2\n\n\n"
                "@dataclasses.dataclass\nclass Cfg:\n"
                "    scale: int = dataclasses.field(default_factory=default_scale)\n"
            ),
            "pipe.py": pipe("    return Cfg().scale", "from helpers import Cfg"),
        },
        ("helpers.py", "return 2", "return 3"),
        RERUN,
        ("code changed: function helpers.default_scale",),
    ),
    Case(
        "dataclass-default-from-a-constant",
        {
            "helpers.py": (
                "import dataclasses\n\nOFFSET = 1\n\n\n"
                "@dataclasses.dataclass\nclass Cfg:\n    offset: int = OFFSET\n"
            ),
            "pipe.py": pipe("    return Cfg().offset", "from helpers import Cfg"),
        },
        ("helpers.py", "OFFSET = 1", "OFFSET = 2"),
        RERUN,
        ("code changed: constant helpers.Cfg.offset",),
    ),
    Case(
        "base-class-in-another-module",
        {
            "helpers.py": "class Base:\n    def g(self):\n        return 1\n",
            "pipe.py": pipe(
                "    return Child().g()",
                "import helpers\n\n\nclass Child(helpers.Base):\n    pass",
            ),
        },
        ("helpers.py", "return 1", "return 2"),
        RERUN,
        ("code changed: class helpers.Base",),
    ),
    Case(
        "property-calls-a-helper",
        {
            "helpers.py": (
                "def inner():\n    return 1\n\n\nclass P:\n    @property\n"
                "    def v(self):\n        return inner()\n\n\nTHING = P()\n"
            ),
            "pipe.py": pipe("    return helpers.THING.v", "import helpers"),
        },
        ("helpers.py", "return 1", "return 2"),
        RERUN,
        ("code changed: function helpers.inner",),
    ),
    Case(
        "keyword-only-default",
        {
            "helpers.py": "LIMIT = 3\n\n\ndef clip(x, *, hi=LIMIT):\n    return min(x, hi)\n",
            "pipe.py": pipe("    return clip(10)", "from helpers import clip"),
        },
        ("helpers.py", "LIMIT = 3", "LIMIT = 4"),
        RERUN,
        ("helpers.clip.<default hi>",),
    ),
    Case(
        "getattr-with-a-literal-name",
        {
            "helpers.py": "def triple(x):\n    return 3 * x\n",
            "pipe.py": pipe('    return getattr(helpers, "triple")(2)', "import helpers"),
        },
        ("helpers.py", "return 3 * x", "return 3 * x + 1"),
        RERUN,
        ("code changed: function helpers.triple",),
    ),
    Case(
        "numpy-array-constant",
        {
            "helpers.py": "import numpy as np\n\nWEIGHTS = np.array([1, 2, 3])\n",
            "pipe.py": pipe("    return int(helpers.WEIGHTS.sum())", "import helpers"),
        },
        ("helpers.py", "[1, 2, 3]", "[1, 2, 4]"),
        RERUN,
        ("code changed: constant helpers.WEIGHTS",),
    ),
    Case(
        "compiled-regex-constant",
        {
            "helpers.py": 'import re\n\nPATTERN = re.compile("a+")\n',
            "pipe.py": pipe(
                '    return len(helpers.PATTERN.findall("aa b aaa"))', "import helpers"
            ),
        },
        ("helpers.py", '"a+"', '"a"'),
        RERUN,
        ("code changed: constant helpers.PATTERN",),
    ),
    # -- what the fingerprint cannot see: reported, never a silent hit ---------------------
    Case(
        "getattr-with-a-computed-name",
        {
            "helpers.py": "def triple(x):\n    return 3 * x\n",
            "pipe.py": pipe('    return getattr(helpers, "tri" + "ple")(2)', "import helpers"),
        },
        ("helpers.py", "return 3 * x", "return 3 * x + 1"),
        REPORTED,
        ("not followed: pipe.compute: getattr(helpers, ...) with a computed name",),
        state="cached",
    ),
    Case(
        "exec-made-function",
        {
            "helpers.py": 'exec("def made(x):\\n    return x * 2")\n',
            "pipe.py": pipe("    return helpers.made(2)", "import helpers"),
        },
        ("helpers.py", "x * 2", "x * 3"),
        REPORTED,
        ("not followed: function helpers.made: no source code",),
    ),
    Case(
        "object-whose-state-cannot-be-hashed",
        {
            "helpers.py": "SOURCE = (n for n in [7])\n",
            "pipe.py": pipe("    return next(helpers.SOURCE)", "import helpers"),
        },
        ("helpers.py", "[7]", "[8]"),
        REPORTED,
        ("not followed: constant helpers.SOURCE: a builtins.generator",),
        state="cached",
    ),
]


def _output(orch: Orch, doc: dict) -> str:
    (ref,) = step_of(doc, "compute")["outputs"]
    return orch.artifact_bytes(ref["hash"]).decode()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_edit_reruns_or_is_reported(case: Case, orch: Orch, project: Project) -> None:
    for name, src in case.files.items():
        project.write(name, src)
    first = orch.run("pipe.py:flow")
    assert states(first) == {"compute": "succeeded"}
    assert states(orch.run("pipe.py:flow")) == {"compute": "cached"}  # no edit: a hit

    project.edit(*case.edit)
    run = orch.run("pipe.py:flow")
    assert states(run) == {"compute": case.state}, orch.explain(run["run_id"], "compute")
    if case.state == "succeeded":
        assert _output(orch, run) != _output(orch, first)
    why = orch.explain(run["run_id"], "compute")
    for name in case.names:
        assert name in why, why
    if case.expect == RERUN:
        assert "not followed" not in why, why


def test_a_hit_despite_what_was_not_followed_says_so_in_run_json(
    orch: Orch, project: Project
) -> None:
    case = next(c for c in CASES if c.id == "getattr-with-a-computed-name")
    for name, src in case.files.items():
        project.write(name, src)
    orch.run("pipe.py:flow")
    run = orch.run("pipe.py:flow")
    compute = step_of(run, "compute")
    assert compute["state"] == "cached"
    assert "not followed: pipe.compute: getattr(helpers, ...)" in compute["reason"]
