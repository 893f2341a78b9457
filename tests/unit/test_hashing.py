"""Code fingerprints follow the code a step reaches; canonical params are order-free."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.cache.hashing import canonical, clear_fingerprints, code_fingerprint, dumps
from orchestrator.errors import ArtifactError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A user project on sys.path; `write(name, src)` (re)writes a module and re-imports it."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, src: str):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(src))
        for mod in [m for m in sys.modules if m in ("helpers", "flow")]:
            del sys.modules[mod]
        importlib.invalidate_caches()
        clear_fingerprints()

    yield write
    for mod in ("helpers", "flow"):
        sys.modules.pop(mod, None)
    clear_fingerprints()


HELPERS = """
SCALE = 2
def clean(x):
    return x * SCALE
class Scaler:
    def apply(self, x):
        return clean(x) + 1
"""

FLOW = """
import numpy as np
import helpers
from helpers import Scaler
def step_fn(x):
    # a comment
    return helpers.clean(x) + Scaler().apply(x) + np.sum([1])
"""


def _fp(project) -> dict[str, str]:
    import flow

    return code_fingerprint(flow.step_fn)


def test_fingerprint_reaches_helpers_classes_constants_and_packages(project) -> None:
    project("helpers", HELPERS)
    project("flow", FLOW)
    parts = _fp(project)
    assert "function flow.step_fn" in parts
    assert "function helpers.clean" in parts
    assert "class helpers.Scaler" in parts
    assert "constant helpers.SCALE" in parts
    assert any(k == "package numpy" for k in parts)


def test_helper_edit_changes_only_that_component(project) -> None:
    project("helpers", HELPERS)
    project("flow", FLOW)
    before = _fp(project)
    project("helpers", HELPERS.replace("return x * SCALE", "return x * SCALE - 1"))
    project("flow", FLOW)
    after = _fp(project)
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed == {"function helpers.clean"}


def test_constant_edit_is_seen(project) -> None:
    project("helpers", HELPERS)
    project("flow", FLOW)
    before = _fp(project)
    project("helpers", HELPERS.replace("SCALE = 2", "SCALE = 3"))
    project("flow", FLOW)
    after = _fp(project)
    assert before["constant helpers.SCALE"] != after["constant helpers.SCALE"]


def test_comments_and_docstrings_do_not_count(project) -> None:
    project("helpers", HELPERS)
    project("flow", FLOW)
    before = _fp(project)
    project("flow", FLOW.replace("# a comment", "# another comment\n    '''doc'''"))
    assert _fp(project) == before


def test_closure_values_are_part_of_the_fingerprint() -> None:
    def make(k: int):
        def inner(x: int) -> int:
            return x * k

        return inner

    a, b = code_fingerprint(make(2)), code_fingerprint(make(3))
    assert a != b
    assert any("<closure k>" in key for key in a)


def test_canonical_params_are_order_independent_and_typed() -> None:
    assert dumps(canonical({"b": 1, "a": [1.0, 2]})) == dumps(canonical({"a": [1.0, 2], "b": 1}))
    assert dumps(canonical(1)) != dumps(canonical(1.0))
    assert canonical(Path("/x")) == "/x"


def test_uncanonical_param_is_a_clear_error() -> None:
    with pytest.raises(ArtifactError, match="has no canonical form"):
        canonical(object())
