"""`load_file` on Excel and JSON-lines files written here, and its errors.

Real files: `.xlsx` written by pandas through openpyxl, `.jsonl`/`.ndjson` written line by
line. A missing Excel reader is a real missing import: a subprocess whose import system
refuses openpyxl and xlrd (a `sys.meta_path` finder), nothing of the library is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import OrchestratorError
from orchestrator.steps import load_file, load_sklearn_dataset


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return load_sklearn_dataset("wine")


MIXED = pd.DataFrame(
    {
        "age": [31, 45, 27, 52],
        "city": ["Lyon", "Oslo", "Lima", "Pune"],
        "income": [41.5, 63.0, None, 38.25],
        "churned": [False, True, False, True],
    }
)


def test_load_file_reads_xlsx_by_sheet_name_or_position(tmp_path: Path, wine: pd.DataFrame) -> None:
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as book:
        wine.to_excel(book, sheet_name="wine", index=False)
        MIXED.to_excel(book, sheet_name="customers", index=False)
    # Excel keeps numbers, not dtypes: 100.0 comes back as the integer 100
    pd.testing.assert_frame_equal(load_file(path), wine, check_dtype=False)
    customers = load_file(path, sheet="customers")
    pd.testing.assert_frame_equal(customers, load_file(path, sheet=1))
    assert customers["city"].tolist() == ["Lyon", "Oslo", "Lima", "Pune"]
    assert customers["income"].isna().tolist() == [False, False, True, False]
    assert customers["churned"].tolist() == [False, True, False, True]
    assert all(isinstance(c, str) for c in customers.columns)


def test_load_file_reads_json_lines(tmp_path: Path, wine: pd.DataFrame) -> None:
    wine.to_json(tmp_path / "wine.jsonl", orient="records", lines=True)
    pd.testing.assert_frame_equal(load_file(tmp_path / "wine.jsonl"), wine, check_dtype=False)
    lines = [json.dumps(r) for r in MIXED.to_dict(orient="records")]
    (tmp_path / "customers.ndjson").write_text("\n".join(lines) + "\n")
    got = load_file(tmp_path / "customers.ndjson")
    assert got["city"].tolist() == MIXED["city"].tolist()
    assert got["age"].tolist() == MIXED["age"].tolist()
    assert got["churned"].tolist() == MIXED["churned"].tolist()
    (tmp_path / "customers.log").write_text("\n".join(lines))
    pd.testing.assert_frame_equal(load_file(tmp_path / "customers.log", format="jsonl"), got)


def test_load_file_read_errors_name_the_file(tmp_path: Path, wine: pd.DataFrame) -> None:
    book = tmp_path / "book.xlsx"
    wine.to_excel(book, sheet_name="wine", index=False)
    with pytest.raises(OrchestratorError) as err:
        load_file(book, sheet="prices")
    assert (
        str(err.value) == f"ingest: cannot read {book} as excel: Worksheet named 'prices' not found"
    )
    broken = tmp_path / "broken.xlsx"
    broken.write_text("a,b\n1,2\n")  # a CSV saved under the wrong suffix
    with pytest.raises(OrchestratorError) as err:
        load_file(broken)
    assert str(err.value) == f"ingest: cannot read {broken} as excel: File is not a zip file"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(OrchestratorError, match=f"^ingest: cannot read {bad} as jsonl: "):
        load_file(bad)
    with pytest.raises(OrchestratorError) as err:
        load_file(bad, format="yaml")
    assert str(err.value) == (
        f"ingest: unknown format 'yaml' for {bad}; use one of auto, csv, tsv, parquet, excel, jsonl"
    )


BLOCKED = """
import sys


class NoExcelReaders:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("openpyxl", "xlrd"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoExcelReaders())
from orchestrator import OrchestratorError
from orchestrator.steps import load_file

for path in sys.argv[1:]:
    try:
        load_file(path)
    except OrchestratorError as exc:
        print(exc)
    else:
        print("read", path)
"""


def test_a_missing_excel_reader_names_the_file_and_the_extra(
    tmp_path: Path, wine: pd.DataFrame
) -> None:
    xlsx, xls, csv = tmp_path / "book.xlsx", tmp_path / "legacy.xls", tmp_path / "plain.csv"
    wine.to_excel(xlsx, index=False)
    xls.write_bytes(b"\xd0\xcf\x11\xe0")  # the reader is checked before the file is read
    wine.to_csv(csv, index=False)
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(xlsx), str(xls), str(csv)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"ingest: reading {xlsx} needs openpyxl, which is not installed; "
        "install the excel extra: pip install 'orchestrator[excel]'",
        f"ingest: reading {xls} needs xlrd, which is not installed; "
        "install the excel extra: pip install 'orchestrator[excel]'",
        f"read {csv}",
    ]
