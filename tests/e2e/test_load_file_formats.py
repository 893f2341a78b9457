"""The built-in `load_file` in a user pipeline, on Excel and JSON-lines files, from the CLI.

The file's content is part of the cache key whatever its format: rewriting the workbook
with other rows runs the ingest step again, an unchanged one is a cache hit.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from orchtest import Orch, Project, states, step_of

FILE_PIPELINE = """
import pandas as pd

from orchestrator import pipeline, step
from orchestrator.steps import load_file


@step(kind="evaluate")
def total(df: pd.DataFrame) -> float:
    return float(df["amount"].sum())


@pipeline
def sales(path: str = "sales.xlsx", sheet: str = "fy2024"):
    total(load_file(path=path, sheet=sheet))
"""


def write_book(path: str, amounts: list[float]) -> None:
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({"amount": [1.0]}).to_excel(book, sheet_name="fy2023", index=False)
        pd.DataFrame({"amount": amounts}).to_excel(book, sheet_name="fy2024", index=False)


def total(orch: Orch, run: dict[str, Any]) -> float:
    [ref] = step_of(run, "total")["outputs"]
    return float(json.loads(orch.stored_text(ref)))


def test_load_file_reads_excel_and_json_lines_in_a_run(orch: Orch, project: Project) -> None:
    project.write("sales.py", FILE_PIPELINE)
    write_book(str(project.path("sales.xlsx")), [10.0, 20.5])
    first = orch.run("sales.py:sales")
    assert states(first) == {"ingest_file": "succeeded", "total": "succeeded"}
    assert total(orch, first) == 30.5
    assert orch.run("sales.py:sales")["steps"][0]["state"] == "cached"

    write_book(str(project.path("sales.xlsx")), [10.0, 20.5, 4.5])
    changed = orch.run("sales.py:sales")
    assert states(changed) == {"ingest_file": "succeeded", "total": "succeeded"}
    assert total(orch, changed) == 35.0

    pd.DataFrame({"amount": [2.0, 3.0]}).to_json(
        project.path("sales.jsonl"), orient="records", lines=True
    )
    lines = orch.run("sales.py:sales", "--param", "path=sales.jsonl")
    assert states(lines) == {"ingest_file": "succeeded", "total": "succeeded"}
    assert total(orch, lines) == 5.0

    project.path("sales.json").write_text('[{"amount": 1}]')
    wrong = orch.run("sales.py:sales", "--param", "path=sales.json", code=1)
    assert (
        "ingest: cannot tell the format of sales.json from its suffix '.json'; "
        in (step_of(wrong, "ingest_file")["error"])
    )
