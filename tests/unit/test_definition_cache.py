"""Definitions already read are kept on disk (`cache/source.py`): a new process that
fingerprints unchanged code parses nothing and gets the same fingerprint, an edited file
is read again, and a damaged record is read from the source and written again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

MODULE = '''
import importlib
import helpers_mod as helpers

RATE = 3


class Scaler:
    """A user class: its source and methods enter the fingerprint."""

    def scale(self, x):
        return getattr(self, "factor", 1) * x


def pick(name):
    return getattr(helpers, name)  # a computed lookup on a user module: not followed


def load(name):
    return importlib.import_module(name)


def train(x: int = 1) -> int:
    """A docstring, not part of the hash."""
    f = lambda v: v + RATE  # noqa: E731
    return Scaler().scale(f(x)) + len(pick.__name__) + len(load.__name__)
'''

RUN = """
import ast, json, sys
sys.path.insert(0, sys.argv[1])
from orchestrator.cache import source
from orchestrator.cache.fingerprint import code_fingerprint
folder = sys.argv[2]
source.use_definition_cache(None if folder == "-" else source.Path(folder))
parses = []
real = ast.parse
def counting(*a, **k):
    parses.append(1)
    return real(*a, **k)
ast.parse = counting
import user_mod
print(json.dumps({"parts": code_fingerprint(user_mod.train), "parses": len(parses)}))
"""


def fingerprint(project: Path, folder: Path | None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(project), str(folder) if folder else "-"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "user_mod.py").write_text(textwrap.dedent(MODULE))
    (root / "helpers_mod.py").write_text("def one():\n    return 1\n")
    return root


def test_a_second_process_parses_nothing_and_gets_the_same_fingerprint(
    project: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "definitions"
    plain = fingerprint(project, None)
    first = fingerprint(project, folder)
    again = fingerprint(project, folder)
    assert first["parts"] == plain["parts"]
    assert again["parts"] == plain["parts"]
    assert any("computed name" in k for k in plain["parts"])  # dynamic calls kept
    assert first["parses"] > 0
    assert again["parses"] == 0
    assert len(list(folder.glob("*.json"))) == 1  # one record per source file read


def test_an_edited_file_is_read_again(project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "definitions"
    before = fingerprint(project, folder)
    path = project / "user_mod.py"
    path.write_text(path.read_text().replace("v + RATE", "v - RATE"))
    edited = fingerprint(project, folder)
    assert edited["parses"] > 0
    assert edited["parts"] != before["parts"]
    assert edited["parts"] == fingerprint(project, None)["parts"]


@pytest.mark.parametrize("damage", ["not json", '{"f 1 x 1": "no list"}', "[]"])
def test_a_damaged_record_is_read_from_the_source_and_written_again(
    project: Path, tmp_path: Path, damage: str
) -> None:
    folder = tmp_path / "definitions"
    good = fingerprint(project, folder)
    (record,) = folder.glob("*.json")
    record.write_text(damage)
    again = fingerprint(project, folder)
    assert again["parts"] == good["parts"]
    assert again["parses"] > 0
    assert isinstance(json.loads(record.read_text()), dict)
    assert fingerprint(project, folder)["parses"] == 0


def test_a_folder_that_cannot_be_written_is_no_error(project: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = fingerprint(project, blocker / "definitions")  # its parent is a file
    assert out["parts"] == fingerprint(project, None)["parts"]
