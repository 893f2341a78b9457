"""Structured logging, and following the live log files of running steps.

structlog to stderr, console lines by default or JSON on request; callers bind `run_id`
and `step`, so every line says which run and step it is about. While a step runs on a
thread or process executor its captured lines are also appended to
`$ORCH_HOME/logs/RUN/STEP.log` (flushed per line); `LogTail` reads those files
incrementally and `LivePrinter` prints them as they grow.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog


def configure(fmt: str = "console", level: str = "info") -> None:
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger("orchestrator").bind(**bound)


class StdlibLogger:
    """The engine's logger for the Python API: lines go to `logging.getLogger("orchestrator")`,
    so a notebook shows warnings and errors (Python's last-resort handler) and no info."""

    def __init__(self, **bound: Any) -> None:
        self.bound = bound
        self._log = logging.getLogger("orchestrator")

    def bind(self, **kw: Any) -> StdlibLogger:
        return StdlibLogger(**self.bound, **kw)

    def _emit(self, level: int, event: str, kw: dict[str, Any]) -> None:
        if self._log.isEnabledFor(level):
            extra = " ".join(f"{k}={v}" for k, v in {**self.bound, **kw}.items())
            self._log.log(level, "%s %s", event, extra)

    def debug(self, event: str, **kw: Any) -> None:
        self._emit(logging.DEBUG, event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit(logging.INFO, event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit(logging.WARNING, event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._emit(logging.ERROR, event, kw)


# -- live step logs -----------------------------------------------------------------------


def live_log_file(folder: Path, step: str) -> Path:
    """Where a step's live log goes in a run's log folder (a name any file system takes)."""
    return folder / (step.replace("/", "_").replace("\\", "_") + ".log")


class LogTail:
    """Follows the per-step log files of one run's folder: `poll()` -> new complete lines.

    A file is read from where the last poll stopped; a line is returned only once its
    newline has been written (the rest waits for the next poll, or `poll(final=True)`).
    Offsets are in bytes, per step; a step's file is `STEP.log`.
    """

    def __init__(self, folder: Path, steps: set[str] | None = None) -> None:
        self.folder, self.steps = folder, steps
        self.offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}

    def poll(self, final: bool = False) -> list[tuple[str, str]]:
        """`(step, line)` pairs written since the last poll, in file order per step."""
        try:
            files = sorted(self.folder.glob("*.log"), key=_mtime)
        except OSError:
            return []
        out: list[tuple[str, str]] = []
        for path in files:
            step = path.name[: -len(".log")]
            if self.steps is not None and step not in self.steps:
                continue
            out.extend((step, line) for line in self._read(step, path, final))
        return out

    def printed(self, step: str) -> int:
        """Bytes of `step`'s file already returned as lines."""
        return self.offsets.get(step, 0) - len(self._partial.get(step, b""))

    def drain(self, step: str) -> list[str]:
        """Everything left in `step`'s file, its last line even without a newline."""
        lines: list[str] = []
        while True:
            got = self._read(step, live_log_file(self.folder, step), final=True)
            if not got:
                return lines
            lines.extend(got)

    def _read(self, step: str, path: Path, final: bool) -> list[str]:
        start = self.offsets.get(step, 0)
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                chunk = fh.read(_CHUNK)
        except OSError:
            return []
        self.offsets[step] = start + len(chunk)
        data = self._partial.pop(step, b"") + chunk
        *done, rest = data.split(b"\n")
        if rest and final:
            done.append(rest)
        elif rest:
            self._partial[step] = rest
        return [d.decode("utf-8", "replace") for d in done]


_CHUNK = 1 << 20


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class LivePrinter:
    """A thread that prints a run's step log lines as they are written, `STEP | line`.

    `write(step, line)` does the printing (console or JSON log line); `stop()` prints
    what is left and joins the thread.
    """

    def __init__(
        self,
        folder: Path,
        write: Callable[[str, str], None],
        interval: float = 0.05,
    ) -> None:
        self.tail, self.write, self.interval = LogTail(folder), write, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="orch-live-logs", daemon=True)

    def start(self) -> LivePrinter:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._emit(final=False)

    def _emit(self, final: bool) -> bool:
        lines = self.tail.poll(final)
        for step, line in lines:
            try:
                self.write(step, line)
            except Exception:  # noqa: BLE001 - a broken console must not stop the run
                return False
        return bool(lines)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
        while self._emit(final=True):
            pass
