"""Following live log files (`LogTail`), capping a rendered log, and `orchestrator.run`."""

from __future__ import annotations

from pathlib import Path

import orchestrator
from orchestrator.cli.show import LOG_LINES, capped_log
from orchestrator.logs import LogTail, live_log_file


def test_tail_returns_complete_lines_once_and_keeps_a_partial_one(tmp_path: Path) -> None:
    path = live_log_file(tmp_path, "ds.train")
    path.write_text("one\ntw")
    tail = LogTail(tmp_path)
    assert tail.poll() == [("ds.train", "one")]
    assert tail.poll() == []
    with path.open("a") as fh:
        fh.write("o\nthree")
    assert tail.poll() == [("ds.train", "two")]
    assert tail.printed("ds.train") == len("one\ntwo\n")
    assert tail.drain("ds.train") == ["three"]
    assert tail.poll(final=True) == []


def test_tail_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    tail = LogTail(tmp_path / "not-yet")
    assert tail.poll() == [] and tail.drain("x") == []


def test_tail_filters_steps(tmp_path: Path) -> None:
    live_log_file(tmp_path, "a").write_text("from a\n")
    live_log_file(tmp_path, "b").write_text("from b\n")
    assert LogTail(tmp_path, {"b"}).poll() == [("b", "from b")]


def test_a_short_log_is_not_capped() -> None:
    log = "".join(f"line {i}\n" for i in range(LOG_LINES))
    assert capped_log(log, "r1", "s") == (None, log.rstrip("\n"))


def test_a_long_log_keeps_its_tail_and_counts_the_rest() -> None:
    log = "".join(f"line {i}\n" for i in range(1000))
    note, tail = capped_log(log, "r1", "fit")
    assert tail.splitlines() == [f"line {i}" for i in range(800, 1000)]
    assert note is not None and note.startswith("... 800 earlier lines")
    assert "`orch logs r1 fit` or `orch show r1 --full-logs`" in note


def test_one_huge_line_is_cut_to_the_byte_cap() -> None:
    note, tail = capped_log("x" * 1_000_000, "r1", "s")
    assert note is not None and len(tail) == 64 * 1024


def test_orchestrator_run_is_the_api_function_beside_the_engine_package() -> None:
    import orchestrator.api as api
    import orchestrator.engine.loop as engine

    assert orchestrator.run is api.run
    assert orchestrator.engine.loop is engine
    assert orchestrator.runs is api.runs and orchestrator.load is api.load
