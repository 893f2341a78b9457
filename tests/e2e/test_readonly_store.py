"""A store on a read-only mount: reading commands read it, writing commands say why not.

The mount is real: the test's ORCH_HOME is bind-mounted onto itself and remounted
read-only (`mount --bind` + `mount -o remount,ro,bind`, as root), so SQLite can create
neither a `-shm` nor a `-wal` file beside the database, exactly as on a read-only share.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from orchtest import Orch, Project

from orchestrator.errors import StoreError
from orchestrator.store.metadata import MetadataStore

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a real mount needs root")


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """`folder` seen through a read-only bind mount of itself, for the block's duration."""
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        probe = folder / ".probe"
        with pytest.raises(OSError, match="Read-only file system"):
            probe.write_text("x")
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_reading_commands_work_and_writing_ones_fail_clearly_on_a_read_only_store(
    orch: Orch, demo_project: Project
) -> None:
    run_id = orch.run("pipe.py:demo")["run_id"]
    with read_only(orch.home):
        listed = orch("runs", "--json")
        assert listed.code == 0, listed.describe()
        assert [r["run_id"] for r in listed.json["runs"]] == [run_id]
        shown = orch("show", run_id, "--json")
        assert shown.code == 0, shown.describe()
        assert {s["state"] for s in shown.json["steps"]} == {"succeeded"}
        why = orch("explain", run_id, "total")
        assert why.code == 0, why.describe()
        events = orch("events", "--json")
        assert events.code == 0, events.describe()

        ran = orch("run", "pipe.py:demo", "--json")
        assert ran.code == 2, ran.describe()
        assert "Traceback" not in ran.err
        (line,) = [ln for ln in ran.err.splitlines() if ln.startswith("error:")]
        assert "read-only" in line and str(orch.db) in line, line
        emitted = orch("event", "emit", "go")
        assert emitted.code == 2 and "read-only" in emitted.err, emitted.describe()
        assert "Traceback" not in emitted.err
    assert [r["run_id"] for r in orch.runs()] == [run_id]  # nothing lost, nothing half-written


WRITER = """
import sys, time
from orchestrator.store.metadata import MetadataStore
s = MetadataStore(sys.argv[1])
s.create_run("held", "demo", "pipe.py:demo", {}, "thread")
print("ready", flush=True)
time.sleep(120)
"""


def test_a_read_only_view_sees_the_rows_of_a_writer_that_holds_the_store_open(
    tmp_path: Path,
) -> None:
    """A daemon writing through the writable path while a reader mounts the folder
    read-only: the reader sees the rows still in the write-ahead log."""
    folder, view = tmp_path / "store", tmp_path / "view"
    folder.mkdir()
    view.mkdir()
    url = f"sqlite:///{folder / 'orchestrator.db'}"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        assert (folder / "orchestrator.db-wal").exists()
        subprocess.run(["mount", "--bind", str(folder), str(view)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
            reader = MetadataStore(f"sqlite:///{view / 'orchestrator.db'}")
            try:
                assert reader.readonly is True  # detected: the folder is not writable
                assert [r["id"] for r in reader.list_runs()] == ["held"]
                with pytest.raises(StoreError, match="read-only"):
                    reader.emit_event("go", {})
            finally:
                reader.close()
        finally:
            subprocess.run(["umount", str(view)], check=True)
    finally:
        writer.kill()
        writer.wait()
