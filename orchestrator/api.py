"""The public Python API: run a pipeline, read runs and load outputs, from any Python code.

    import orchestrator
    run = orchestrator.run(housing, params={"alpha": 0.3})   # or housing.run(alpha=0.3)
    run.status, run.run_id, run.steps
    model = run.output("fit")                 # the value, loaded from the artifact store
    test = run.output("split", "test")        # one output of a multi-output step (or 1)
    orchestrator.runs(pipeline="housing", limit=5)
    orchestrator.load("3f2a", "fit")          # an earlier run's output; an id prefix is enough

Everything goes through a `Workspace` (orchestrator.config): the same `ORCH_HOME`,
`ORCH_DB_URL` and `ORCH_ARTIFACTS` as the CLI, so a run made here shows in `orch runs`
and a cache hit is a hit whichever front end made the entry. The CLI's `run` and
`resume` call `execute` below; nothing here prints unless asked (`progress=True`), nor
exits the process. Each call opens and closes its own store, so a notebook can run
pipelines again and again in one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from orchestrator.artifacts.store import ArtifactRef
from orchestrator.config import Workspace
from orchestrator.errors import (
    ArtifactError,
    ExecutorError,
    NotFound,
    StepFailed,
    StepTimeout,
    TargetNotFound,
    did_you_mean,
)
from orchestrator.model.graph import Graph
from orchestrator.model.pipeline import Pipeline

Listener = Callable[[str, str, dict[str, Any]], None]
LogWriter = Callable[[str, str], None]


@dataclasses.dataclass(frozen=True)
class StepRun:
    """One step of a run: its state, timing, cache key, why it ran, and its outputs."""

    name: str
    kind: str
    state: str
    duration: float
    attempts: int
    cache_key: str | None
    reason: dict[str, Any]
    error: str | None
    outputs: list[ArtifactRef]
    output_names: list[str]


class Run:
    """A finished run (just made, or read from the store). Values load on demand."""

    def __init__(
        self,
        doc: dict[str, Any],
        steps: list[StepRun],
        artifacts: Any,
        params: dict[str, Any] | None = None,
    ) -> None:
        self._doc, self._steps, self._artifacts = doc, steps, artifacts
        self.params: dict[str, Any] = params or {}

    @property
    def run_id(self) -> str:
        return str(self._doc["run_id"])

    @property
    def pipeline(self) -> str:
        return str(self._doc["pipeline"])

    @property
    def status(self) -> str:
        return str(self._doc["status"])

    @property
    def duration(self) -> float | None:
        value = self._doc.get("duration")
        return None if value is None else float(value)

    @property
    def steps(self) -> list[StepRun]:
        return list(self._steps)

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, pipeline={self.pipeline!r}, status={self.status!r})"

    def step(self, name: str) -> StepRun:
        """The step run called `name`; unknown names raise `NotFound` with a suggestion."""
        by_name = {s.name: s for s in self._steps}
        if name not in by_name:
            raise NotFound(
                f"run {self.run_id} has no step '{name}'{did_you_mean(name, by_name)}; "
                f"its steps: {', '.join(by_name) or 'none'}"
            )
        return by_name[name]

    def output_ref(self, step: str, output: str | int | None = None) -> ArtifactRef:
        """The stored artifact of one output of `step` (see `output`)."""
        s = self.step(step)
        where = f"step '{step}' of run {self.run_id}"
        if s.state == "failed":
            raise _step_error(self.run_id, s)
        if not s.outputs:
            raise NotFound(f"{where} has no stored output (it {s.state})")
        return s.outputs[_output_index(s, output, where)]

    def output(self, step: str, output: str | int | None = None) -> Any:
        """The value `step` returned, loaded from the artifact store.

        A step with several outputs needs `output`: its name or its index (0, 1, ...).
        """
        ref = self.output_ref(step, output)
        try:
            return self._artifacts.get(ref)
        except ArtifactError as exc:
            label = "" if output is None else f" output {output!r}"
            raise ArtifactError(f"run {self.run_id} step '{step}'{label}: {exc}") from None

    def explain(self, step: str) -> dict[str, Any]:
        """Why `step` ran or was cached: the document of `orch explain RUN STEP --json`."""
        s = self.step(step)
        return {
            "run_id": self.run_id,
            "step": s.name,
            "state": s.state,
            "cache_key": s.cache_key,
            "reason": s.reason,
        }

    def raise_for_status(self) -> None:
        """Raise `StepFailed` (`StepTimeout` for a timeout) for the first failed step."""
        for s in self._steps:
            if s.state == "failed":
                raise _step_error(self.run_id, s)

    def to_json(self) -> dict[str, Any]:
        """The document `orch run --json` prints."""
        return dict(self._doc)


def _step_error(run_id: str, s: StepRun) -> StepFailed:
    cause = (s.error or "failed").splitlines()[0]
    cls = StepTimeout if f"step '{s.name}' timed out after" in cause else StepFailed
    return cls(s.name, run_id, cause)


def _output_index(s: StepRun, output: str | int | None, where: str) -> int:
    names = s.output_names
    if output is None:
        if len(s.outputs) == 1:
            return 0
        named = [n for n in names if not n.isdigit()]
        example = f"'{named[0]}' or 0" if named else "0"
        raise NotFound(
            f"{where} has {len(s.outputs)} outputs ({', '.join(names)}); "
            f"say which, by name or index, e.g. {example}"
        )
    if isinstance(output, int) and not isinstance(output, bool):
        if 0 <= output < len(s.outputs):
            return output
        raise NotFound(f"{where} has no output {output}; it has {len(s.outputs)} (0-based)")
    key = str(output)
    if key in names:
        return names.index(key)
    if key.isdigit() and int(key) < len(s.outputs):
        return int(key)
    raise NotFound(
        f"{where} has no output '{key}'{did_you_mean(key, names)}; its outputs: {', '.join(names)}"
    )


def _names(outputs: list[dict[str, Any]], declared: list[str] | None) -> list[str]:
    """Output names: recorded ones, else the step's declared ones, else "0", "1", ..."""
    names = []
    for i, o in enumerate(outputs):
        name = o.get("name") if isinstance(o, dict) else None
        if not name and declared and i < len(declared):
            name = declared[i]
        names.append(str(name) if name else str(i))
    return names


# -- running ------------------------------------------------------------------------------


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def execute(
    ws: Workspace,
    graph: Graph,
    *,
    target: str,
    executor: str = "thread",
    listener: Listener | None = None,
    on_log: LogWriter | None = None,
    run_id: str | None = None,
    resumed_from: str | None = None,
    trigger: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    logger: Any = None,
    selection: Any = None,
) -> Any:
    """Run `graph` in workspace `ws`; returns the engine's `RunResult`.

    `listener(step, state, info)` hears every state change; `on_log(step, line)` gets each
    step log line as it is written (thread and process executors). KeyboardInterrupt
    propagates once the run is recorded as interrupted.
    """
    from orchestrator.engine.loop import Engine, new_run_id
    from orchestrator.execution.backends import NAMES
    from orchestrator.execution.worker import install_capture
    from orchestrator.logs import get_logger

    if executor not in NAMES:  # before the run is recorded
        raise ExecutorError(f"unknown executor '{executor}'; choose one of {', '.join(NAMES)}")
    ws.ensure_writable()
    run_id = run_id or new_run_id()
    log = logger.bind(run_id=run_id) if logger is not None else get_logger(run_id=run_id)
    log = log.bind(pipeline=graph.pipeline)
    install_capture()
    engine = Engine(ws.store, ws.artifacts, ws.executors(options), listener=listener, logger=log)
    try:
        engine.executor(executor)  # an unreachable cluster fails before the run is recorded
        with _live_logs(ws, run_id, on_log):
            return engine.run(
                graph,
                target=target,
                executor=executor,
                run_id=run_id,
                resumed_from=resumed_from,
                trigger=trigger,
                selection=selection,
            )
    finally:
        engine.close()


@contextlib.contextmanager
def _live_logs(ws: Workspace, run_id: str, on_log: LogWriter | None) -> Iterator[None]:
    """Steps tee their log lines to `logs/RUN/` while the run goes; `on_log` follows them.

    Steps that ran elsewhere (Docker, Dask) wrote no live file: once the run has ended,
    their stored logs are passed to `on_log` too.
    """
    from orchestrator.execution.worker import stream_logs
    from orchestrator.logs import LivePrinter

    folder = ws.logs_dir / run_id
    stream_logs(run_id, folder)
    printer = LivePrinter(folder, on_log).start() if on_log is not None else None
    ended = False
    try:
        yield
        ended = True
    finally:
        stream_logs(run_id, None)
        if printer is not None:
            printer.stop()
            if ended:
                _late_logs(ws, run_id, set(printer.tail.offsets), on_log)
        shutil.rmtree(folder, ignore_errors=True)  # the full logs are in the store now


def _late_logs(ws: Workspace, run_id: str, seen: set[str], on_log: Any) -> None:
    for row in ws.store.step_runs(run_id):
        if row.get("log") and row["name"] not in seen and row["state"] != "cached":
            for line in str(row["log"]).splitlines():
                on_log(row["name"], line)


def run(
    target: Pipeline | str,
    params: dict[str, Any] | None = None,
    *,
    executor: str = "thread",
    home: str | Path | None = None,
    db_url: str | None = None,
    artifacts: str | Path | None = None,
    progress: bool = False,
    only: str | list[str] | None = None,
    from_: str | list[str] | None = None,
    to: str | list[str] | None = None,
    tags: str | list[str] | None = None,
) -> Run:
    """Run a pipeline (a `@pipeline` object, a built-in name or `path/file.py:function`).

    `params` are the pipeline's parameters and `STEP.PARAM` overrides, as `--param` takes
    them. `home`, `db_url` and `artifacts` default to ORCH_HOME, ORCH_DB_URL and
    ORCH_ARTIFACTS. With `progress=True`, step states and step log lines are printed to
    stderr as the CLI does. `only`, `from_`, `to` and `tags` select part of the pipeline as
    the CLI's `--only`, `--from`, `--to` and `--tags` do (a name or a list of names). A
    failed step does not raise: look at `status` and `steps`, or call `raise_for_status()`.
    """
    from orchestrator.engine.selection import Selection
    from orchestrator.loader import normalize_target

    picked = Selection.parse(
        *(",".join(v) if isinstance(v, list) else v for v in (only, from_, to, tags))
    )

    pipe, label = _resolve(target)
    graph = pipe.build(dict(params or {}))
    ws = Workspace(home, db_url, artifacts)
    try:
        if progress:
            from orchestrator.cli.progress import Progress, print_log_line

            with Progress(graph, f"{graph.pipeline} ({len(graph.order)} steps)") as bar:
                result = execute(
                    ws, graph, target=normalize_target(label), executor=executor,
                    listener=bar, on_log=print_log_line, selection=picked,
                )  # fmt: skip
        else:
            from orchestrator.logs import StdlibLogger

            result = execute(
                ws, graph, target=normalize_target(label), executor=executor,
                logger=StdlibLogger(), selection=picked,
            )  # fmt: skip
        return from_result(result, graph, ws.artifacts)
    finally:
        ws.close()


def _resolve(target: Pipeline | str) -> tuple[Pipeline, str]:
    from orchestrator.loader import load_target

    if isinstance(target, Pipeline):
        fn = target.fn
        module = getattr(fn, "__module__", "") or ""
        mod = sys.modules.get(module)
        path = getattr(mod, "__file__", None)
        if getattr(mod, "__orch_from_path__", False) and path:
            return target, f"{path}:{fn.__name__}"
        return target, f"{module}:{fn.__name__}"
    if isinstance(target, str):
        return load_target(target), target
    raise TargetNotFound(
        f"orchestrator.run expects a @pipeline or a target string, got {type(target).__name__}"
    )


def from_result(result: Any, graph: Graph, artifacts: Any) -> Run:
    """A `Run` over the engine's `RunResult` of `graph`."""
    steps = []
    for s in result.steps:
        node = graph.nodes.get(s.name)
        declared = getattr(node.step, "output_names", None) if node is not None else None
        steps.append(
            StepRun(
                s.name,
                s.kind,
                s.state,
                s.duration,
                s.attempts,
                s.cache_key,
                dict(s.reason or {}),
                s.error,
                list(s.outputs),
                _names([{}] * len(s.outputs), declared),
            )  # fmt: skip
        )
    doc = result.to_json()
    for d, s in zip(doc["steps"], steps, strict=True):
        for o, name in zip(d["outputs"], s.output_names, strict=True):
            o.setdefault("name", name)
    return Run(doc, steps, artifacts, dict(graph.params))


# -- history --------------------------------------------------------------------------------


def history(ws: Workspace, run_row: dict[str, Any], step_rows: list[dict[str, Any]]) -> Run:
    """A `Run` over rows of the metadata store, with the same `to_json()` as a fresh run."""
    steps = [
        StepRun(
            r["name"],
            r["kind"],
            r["state"],
            float(r.get("duration") or 0.0),
            int(r.get("attempts") or 0),
            r.get("cache_key"),
            dict(r.get("reason") or {}),
            r.get("error"),
            [ArtifactRef.from_json(o) for o in r.get("outputs") or []],
            _names(list(r.get("outputs") or []), None),
        )  # fmt: skip
        for r in step_rows
    ]
    ended, started = run_row.get("ended_at"), run_row.get("started_at")
    duration = (ended - started).total_seconds() if ended and started else None
    doc = {
        "run_id": run_row["id"],
        "pipeline": run_row["pipeline"],
        "status": run_row["status"],
        "duration": None if duration is None else round(duration, 4),
        "steps": [
            {
                "name": s.name,
                "kind": s.kind,
                "state": s.state,
                "duration": round(s.duration, 4),
                "attempts": s.attempts,
                "cache_key": s.cache_key,
                "reason": s.reason.get("summary"),
                "error": s.error,
                "outputs": list(r.get("outputs") or []),
            }  # fmt: skip
            for s, r in zip(steps, step_rows, strict=True)
        ],
    }
    return Run(doc, steps, ws.artifacts, dict(run_row.get("params") or {}))


def get_run(run_id: str, *, home: str | Path | None = None, db_url: str | None = None) -> Run:
    """An earlier run by id (a unique prefix is enough)."""
    ws = Workspace(home, db_url)
    try:
        row = ws.store.get_run(run_id)
        return history(ws, row, ws.store.step_runs(row["id"]))
    finally:
        ws.close()


def runs(
    pipeline: str | None = None,
    status: str | None = None,
    limit: int = 20,
    *,
    home: str | Path | None = None,
    db_url: str | None = None,
) -> list[Run]:
    """Recent runs, newest first, as `orch runs` lists them."""
    ws = Workspace(home, db_url)
    try:
        rows = ws.store.list_runs(limit, pipeline, status)
        return [history(ws, r, ws.store.step_runs(r["id"])) for r in rows]
    finally:
        ws.close()


def load(
    run_id: str,
    step: str,
    output: str | int | None = None,
    *,
    home: str | Path | None = None,
    db_url: str | None = None,
) -> Any:
    """The value one step of an earlier run returned (`output`: a name or an index)."""
    return get_run(run_id, home=home, db_url=db_url).output(step, output)
