"""Code fingerprints follow the code a step reaches; canonical params are order-free."""

from __future__ import annotations

import dataclasses
import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.cache.fingerprint import clear_fingerprints, code_fingerprint
from orchestrator.cache.hashing import canonical, dumps
from orchestrator.errors import ArtifactError
from orchestrator.model.step import FileInput


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


def test_canonical_dicts_sort_by_key_text_whatever_the_key_types() -> None:
    from collections import OrderedDict

    mixed = {2: "b", "10": "c", 1: {"z": 1, "y": (1, 2)}}
    expected = {"1": {"y": [1, 2], "z": 1}, "10": "c", "2": "b"}
    assert canonical(mixed) == expected
    assert list(canonical(mixed)) == ["1", "10", "2"]
    assert canonical(OrderedDict(reversed(list(mixed.items())))) == expected
    assert list(canonical({"b": 1, "a": 2})) == ["a", "b"]


def test_uncanonical_param_is_a_clear_error() -> None:
    with pytest.raises(ArtifactError, match="has no canonical form"):
        canonical(object())


# -- what the fingerprint follows, and what it reports ------------------------------------

FOLLOW = """
import functools
import helpers

TRIPLE = functools.partial(helpers.mul, k=3)
SCALER = helpers.Scaler(2)
BUFFER = (c for c in "x")


def by_partial():
    return TRIPLE(2)


def by_instance():
    return SCALER.apply(3)


def by_import_in_body():
    from helpers import mul

    return mul(1, 2)


def by_computed_getattr(name):
    return getattr(helpers, name)(1, 2)


def by_unhashable():
    return next(BUFFER)
"""

FOLLOW_HELPERS = """
def mul(x, k):
    return x * k


class Scaler:
    def __init__(self, f):
        self.f = f

    def apply(self, x):
        return mul(x, self.f)
"""


def _flow_fp(name: str) -> dict[str, str]:
    import flow

    return code_fingerprint(getattr(flow, name))


def test_partials_instances_and_body_imports_are_followed(project) -> None:
    project("helpers", FOLLOW_HELPERS)
    project("flow", FOLLOW)
    assert {"function helpers.mul", "constant flow.TRIPLE.<keyword k>"} <= _flow_fp(
        "by_partial"
    ).keys()
    inst = _flow_fp("by_instance")
    assert {"class helpers.Scaler", "constant flow.SCALER.f", "function helpers.mul"} <= inst.keys()
    assert "function helpers.mul" in _flow_fp("by_import_in_body")


def test_what_cannot_be_followed_is_a_named_component(project) -> None:
    from orchestrator.cache.fingerprint import unfollowed

    project("helpers", FOLLOW_HELPERS)
    project("flow", FOLLOW)
    assert unfollowed(_flow_fp("by_computed_getattr")) == [
        "flow.by_computed_getattr: getattr(helpers, ...) with a computed name"
    ]
    assert unfollowed(_flow_fp("by_unhashable")) == [
        "constant flow.BUFFER: a builtins.generator whose state cannot be hashed"
    ]
    assert unfollowed(_flow_fp("by_partial")) == []


def test_a_module_loaded_from_a_path_is_named_relative_to_its_package_root(tmp_path: Path) -> None:
    from orchestrator.cache.identity import module_identity
    from orchestrator.execution.worker import load_module_from_path

    for where in ("a/proj", "b/deeper/proj"):
        root = tmp_path / where
        (root / "pkg").mkdir(parents=True)
        (root / "pkg" / "__init__.py").write_text("")
        (root / "pkg" / "flow.py").write_text("def f():\n    return 1\n")
        mod = load_module_from_path(root / "pkg" / "flow.py")
        assert mod.__name__.startswith("orch_user_")
        assert module_identity(mod.__name__) == "pkg.flow"
        assert "function pkg.flow.f" in code_fingerprint(mod.f)


def test_a_module_reading_its_own_name_is_keyed_by_identity_not_folder(tmp_path: Path) -> None:
    from orchestrator.execution.worker import load_module_from_path

    source = "import logging\ndef f():\n    logging.getLogger(__name__).info(__file__)\n"
    fps = []
    edited = source.replace("info(", "warning(")
    for where, body in (("a/proj", source), ("b/deeper/proj", source), ("c/proj", edited)):
        (tmp_path / where).mkdir(parents=True)
        (tmp_path / where / "flow.py").write_text(body)
        fps.append(code_fingerprint(load_module_from_path(tmp_path / where / "flow.py").f))
    assert "module flow.__name__" in fps[0] and "module flow.__file__" in fps[0]
    assert fps[0] == fps[1]  # another folder, another import name: the same fingerprint
    assert fps[2]["function flow.f"] != fps[0]["function flow.f"]  # an edit still counts


# -- cache keys -------------------------------------------------------------------------


def _node(fn, **bindings):
    from orchestrator.model.step import Node, Step

    return Node(fn.__name__, Step(fn), bindings)


def _ingest(path: FileInput, n: int = 1) -> int:
    return n


def test_key_changes_with_params_inputs_and_salt_only(tmp_path: Path) -> None:
    from orchestrator.cache.keys import KeyMaker

    data = tmp_path / "d.csv"
    data.write_text("x\n1\n")
    keys = KeyMaker()
    base = keys.make(_node(_ingest, path=str(data)), {"a": "h1"})
    assert keys.make(_node(_ingest, path=str(data)), {"a": "h1"}).key == base.key
    assert keys.make(_node(_ingest, path=str(data), n=2), {"a": "h1"}).key != base.key
    assert keys.make(_node(_ingest, path=str(data)), {"a": "h2"}).key != base.key
    assert base.params["path"]["content"] and base.params["n"] == 1
    data.write_text("x\n2\n")
    assert keys.make(_node(_ingest, path=str(data)), {"a": "h1"}).key != base.key


@pytest.mark.parametrize(("kind", "make"), [("a FIFO", "fifo"), ("a directory", "dir")])
def test_file_input_that_is_not_a_regular_file_fails_at_once(
    tmp_path: Path, kind: str, make: str
) -> None:
    import os

    from orchestrator.cache.keys import KeyMaker
    from orchestrator.errors import OrchestratorError

    target = tmp_path / "odd"
    os.mkfifo(target) if make == "fifo" else target.mkdir()
    with pytest.raises(OrchestratorError) as err:
        KeyMaker().make(_node(_ingest, path=str(target)), {})
    assert str(err.value) == (
        f"step '_ingest' parameter 'path': {target} is not a regular file ({kind}); "
        "a FileInput must name a regular file"
    )


def test_explain_miss_names_changes_and_what_was_not_followed() -> None:
    from orchestrator.cache.keys import KeyParts, explain_hit, explain_miss

    blind = "not followed: f: getattr(m, ...) with a computed name"
    old = {
        "cache_key": "k0",
        "run_id": "r0",
        "code": {"function m.f": "1", blind: "d"},
        "params": {"n": 1},
        "inputs": {"a": "h"},
    }
    parts = KeyParts(
        "k1", {"function m.f": "2", blind: "d", "constant m.C": "3"}, {"n": 2}, {"a": "h2"}, ""
    )
    why = explain_miss(parts, [old])
    assert why["details"] == [
        "code changed: function m.f",
        "code added: constant m.C",
        "parameter 'n' changed: 1 -> 2",
        "input 'a' changed (new content hash)",
        blind,
    ]
    assert why["compared_with_run"] == "r0"
    hit = explain_hit(parts, "r0", "hit")
    assert hit["details"] == ["cached: same code, params and inputs as run r0", blind]
    assert blind in hit["summary"]
    clean = KeyParts("k2", {"function m.f": "2"}, {}, {}, "")
    assert "details" not in explain_hit(clean, "r0", "hit")
    assert explain_miss(clean, [])["summary"] == "no cache entry for this step yet"


def test_a_step_reading_its_run_context_has_nothing_unfollowed() -> None:
    """`current()` reads a context variable: run-time state, not a constant of the code."""
    from orchestrator import current
    from orchestrator.cache.fingerprint import unfollowed

    def tracked() -> int:
        current().log_metric("m", 1.0)
        return 1

    clear_fingerprints()
    parts = code_fingerprint(tracked)
    assert unfollowed(parts) == [], unfollowed(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class _Slotted:
    x: int


def test_a_slots_dataclass_reached_by_a_step_has_nothing_unfollowed() -> None:
    """`@dataclass(frozen=True, slots=True)` gives the class `dataclasses`' own
    `__getstate__`: not its code (that is the fields'), so none of it is unfollowed."""
    from orchestrator.cache.fingerprint import unfollowed

    assert _Slotted.__getstate__.__module__ == dataclasses.__name__  # the case this is about

    def uses() -> object:
        return _Slotted(1)

    clear_fingerprints()
    parts = code_fingerprint(uses)
    assert any(k.startswith("class ") and k.endswith("_Slotted") for k in parts), sorted(parts)
    assert unfollowed(parts) == [], unfollowed(parts)
