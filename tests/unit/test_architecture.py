"""The dependency rules of STYLE.md, checked: layers inside the engine, public API outside."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_layers_hold() -> None:
    exe = shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency (pip install -e '.[test]')"
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_steps_and_pipelines_use_only_the_public_api() -> None:
    allowed = {"orchestrator", "orchestrator.steps"}
    offenders = []
    for folder in ("steps", "pipelines"):
        for path in (ROOT / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.module
                    and node.level == 0
                    and node.module.startswith("orchestrator")
                    and node.module not in allowed
                ):
                    offenders.append(f"{path.relative_to(ROOT)}: from {node.module} import ...")
                if (
                    isinstance(node, ast.ImportFrom)
                    and folder == "steps"
                    and node.level == 0
                    and (node.module or "").startswith("orchestrator.pipelines")
                ):
                    offenders.append(f"{path.relative_to(ROOT)}: steps must not import pipelines")
    assert not offenders, "\n".join(offenders)


def test_ruff_is_clean() -> None:
    exe = shutil.which("ruff")
    assert exe, "ruff is a test dependency (pip install -e '.[test]')"
    proc = subprocess.run([exe, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
