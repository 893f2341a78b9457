"""Trigger definitions: the schedules, event triggers, sensors and monitors of pipeline files.

Definitions are objects defined at module level (or in a module-level list or tuple) of
the user's pipeline files; `pipeline` names a pipeline of the same file, a built-in
pipeline, or a full target. Loading a file runs it: anything that goes wrong there (a
syntax error, a definition with a wrong field, an exception at import) is one
`OrchestratorError` naming the file and line, e.g. `flow.py:14: schedule 'nightly': ...`.
Names are unique across all the files given.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError, TriggerError, did_you_mean
from orchestrator.execution.worker import load_module_from_path
from orchestrator.loader import load_target
from orchestrator.model.pipeline import Pipeline
from orchestrator.triggers.events import EventTrigger, FileSensor
from orchestrator.triggers.monitors import DriftMonitor, MetricMonitor
from orchestrator.triggers.schedules import Schedule

DEFINITIONS = (Schedule, EventTrigger, FileSensor, DriftMonitor, MetricMonitor)


@dataclasses.dataclass(frozen=True)
class Bound:
    """A schedule with its pipeline resolved to a loadable target."""

    schedule: Any  # a Schedule, EventTrigger, FileSensor, DriftMonitor or MetricMonitor
    target: str
    pipeline: Any  # the Pipeline; None for monitors, which watch a model


def load_schedules(files: Iterable[Path]) -> list[Bound]:
    """Every `Schedule` defined at module level in the given files, with its pipeline."""
    return [b for b in load_definitions(files) if isinstance(b.schedule, Schedule)]


def load_definitions(files: Iterable[Path]) -> list[Bound]:
    """Every `Schedule` and `EventTrigger` defined at module level in the given files."""
    out: list[Bound] = []
    names: set[str] = set()
    for file in files:
        module = load_file(file)
        for value in vars(module).values():
            found = value if isinstance(value, list | tuple) else [value]
            for item in found:
                if not isinstance(item, DEFINITIONS):
                    continue
                if item.name in names:
                    raise TriggerError(f"two schedules or triggers are named '{item.name}'")
                names.add(item.name)
                out.append(_bind(item, module, file))
    return out


def load_file(file: Path) -> Any:
    """Import one pipeline file; a failure is one error naming the file and line."""
    if not file.is_file():
        raise TriggerError(f"pipeline file not found: {file}")
    try:
        return load_module_from_path(file)
    except OrchestratorError as exc:
        raise TriggerError(f"{_location(exc, file)}: {exc}") from None
    except (Exception, SystemExit) as exc:
        detail = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        raise TriggerError(f"cannot load {_location(exc, file)}: {what}") from None


def _location(exc: BaseException, file: Path) -> str:
    """`path:line` where `exc` arose: the deepest frame of user code in the file's folder
    (not of this package, should the folder hold it), else the file alone."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        where = Path(exc.filename)
        shown = file if where.resolve() == file.resolve() else where
        return f"{shown}:{exc.lineno}"
    folder, ours = file.resolve().parent, Path(__file__).resolve().parents[1]
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith("<")
        and Path(f.filename).resolve().is_relative_to(folder)
        and not Path(f.filename).resolve().is_relative_to(ours)
    ]
    if not frames:
        return str(file)
    last = Path(frames[-1].filename)
    shown = file if last.resolve() == file.resolve() else last
    return f"{shown}:{frames[-1].lineno}"


def _bind(sch: Any, module: Any, file: Path) -> Bound:
    if isinstance(sch, DriftMonitor | MetricMonitor):  # they watch a model, not a pipeline
        return Bound(sch, "", None)
    local = getattr(module, sch.pipeline, None)
    if ":" not in sch.pipeline and isinstance(local, Pipeline):
        return Bound(sch, f"{file.resolve()}:{sch.pipeline}", local)
    try:
        return Bound(sch, sch.pipeline, load_target(sch.pipeline))
    except OrchestratorError as exc:
        pipes = [n for n, v in vars(module).items() if isinstance(v, Pipeline)]
        what = {Schedule: "schedule", EventTrigger: "trigger"}.get(type(sch), "sensor")
        raise TriggerError(
            f"{what} '{sch.name}': no pipeline '{sch.pipeline}'"
            f"{did_you_mean(sch.pipeline, pipes)} ({exc})"
        ) from None


__all__ = ["DEFINITIONS", "Bound", "load_definitions", "load_file", "load_schedules"]
