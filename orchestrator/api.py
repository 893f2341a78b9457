"""The public Python API: run a pipeline, read runs and load outputs, from any Python code.

    import orchestrator
    run = orchestrator.run(housing, params={"alpha": 0.3})   # or housing.run(alpha=0.3)
    run.status, run.run_id, run.steps
    model = run.output("fit")                 # the value, loaded from the artifact store
    test = run.output("split", "test")        # one output of a multi-output step (or 1)
    orchestrator.runs(pipeline="housing", limit=5)
    orchestrator.runs(pipeline="housing", sort="-r2", filters=["C=1"])  # run.metrics, .params
    orchestrator.compare(["3f2a", "9bc1"])    # metrics side by side, what differs
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
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from orchestrator.config import Workspace
from orchestrator.errors import (
    ExecutorError,
    TargetNotFound,
)
from orchestrator.model.graph import Graph
from orchestrator.model.pipeline import Pipeline
from orchestrator.results import Run, StepRun, from_result, history  # noqa: F401

Listener = Callable[[str, str, dict[str, Any]], None]
LogWriter = Callable[[str, str], None]


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
    from orchestrator.cache.source import use_definition_cache
    from orchestrator.engine.loop import Engine, new_run_id
    from orchestrator.execution.backends import NAMES
    from orchestrator.execution.worker import install_capture
    from orchestrator.logs import get_logger

    if executor not in NAMES:  # before the run is recorded
        raise ExecutorError(f"unknown executor '{executor}'; choose one of {', '.join(NAMES)}")
    ws.store.db.refuse_writes()  # a read-only store says so, naming itself
    ws.ensure_writable()
    run_id = run_id or new_run_id()
    log = logger.bind(run_id=run_id) if logger is not None else get_logger(run_id=run_id)
    log = log.bind(pipeline=graph.pipeline)
    install_capture()
    use_definition_cache(ws.home / "cache" / "definitions")  # source already read is not reparsed
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
        _keep_interrupted_logs(ws, run_id, folder)
        shutil.rmtree(folder, ignore_errors=True)  # the full logs are in the store now


def _keep_interrupted_logs(ws: Workspace, run_id: str, folder: Path) -> None:
    """Steps interrupted while running (a cancel, Ctrl-C) recorded no log: keep their
    live files' text in the store before the folder goes."""
    from orchestrator.logs import live_log_file

    logs = {}
    for row in ws.store.step_states(run_id):
        if row["state"] == "interrupted" and not row.get("log"):
            with contextlib.suppress(OSError):
                logs[row["name"]] = live_log_file(folder, row["name"]).read_text(errors="replace")
    if logs:
        ws.store.keep_logs(run_id, logs)


def _late_logs(ws: Workspace, run_id: str, seen: set[str], on_log: Any) -> None:
    for row in ws.store.step_states(run_id):
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

    picked = Selection.parse(
        *(",".join(v) if isinstance(v, list) else v for v in (only, from_, to, tags))
    )

    pipe, label = _resolve(target)
    graph = pipe.build(dict(params or {}))
    ws = Workspace(home, db_url, artifacts)
    try:
        return run_built(ws, graph, label, executor=executor, progress=progress, selection=picked)
    finally:
        ws.close()


def run_built(
    ws: Workspace,
    graph: Graph,
    label: str,
    *,
    executor: str = "thread",
    progress: bool = False,
    selection: Any = None,
    trigger: dict[str, Any] | None = None,
) -> Run:
    """Run a built `graph` of target `label` in `ws` as `run` does -> `orchestrator.Run`."""
    from orchestrator.loader import normalize_target

    target = normalize_target(label)
    if progress:
        from orchestrator.cli.progress import Progress, print_log_line
        from orchestrator.engine.selection import plan

        members = plan(graph, selection).members if selection else None
        with Progress(graph, steps=members) as bar:
            result = execute(
                ws, graph, target=target, executor=executor, listener=bar,
                on_log=print_log_line, selection=selection, trigger=trigger,
            )  # fmt: skip
    else:
        from orchestrator.logs import StdlibLogger

        result = execute(
            ws, graph, target=target, executor=executor, logger=StdlibLogger(),
            selection=selection, trigger=trigger,
        )  # fmt: skip
    tracked = ws.store.tracking.summaries([result.run_id])[result.run_id]
    return from_result(result, graph, ws.artifacts, tracked)


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


def get_run(run_id: str, *, home: str | Path | None = None, db_url: str | None = None) -> Run:
    """An earlier run by id (a unique prefix is enough)."""
    ws = Workspace(home, db_url)
    try:
        row = ws.store.get_run(run_id)
        tracked = ws.store.tracking.summaries([row["id"]])[row["id"]]
        return history(ws, row, ws.store.step_runs(row["id"]), tracked)
    finally:
        ws.close()


def runs(
    pipeline: str | None = None,
    status: str | None = None,
    limit: int = 20,
    *,
    sort: str | None = None,
    filters: list[str] | None = None,
    search: str | None = None,
    home: str | Path | None = None,
    db_url: str | None = None,
) -> list[Run]:
    """Recent runs, newest first, as `orch runs` lists them, with `metrics` and `params`.

    `sort` is a metric or parameter name (`-r2`: descending), `filters` are `NAME=VALUE` /
    `NAME>NUMBER` conditions, `search` free text (run id, pipeline, trigger, logged
    parameters), exactly as `orch runs --sort/--filter/--search` take them."""
    from orchestrator.experiments import query

    ws = Workspace(home, db_url)
    try:
        rows = query(
            ws.store, pipeline=pipeline, status=status, limit=limit, sort=sort,
            filters=filters, search=search,
        )  # fmt: skip
        summaries = ws.store.tracking.summaries(r["id"] for r in rows)
        return [history(ws, r, ws.store.step_runs(r["id"]), summaries[r["id"]]) for r in rows]
    finally:
        ws.close()


def compare(
    run_ids: list[str], *, home: str | Path | None = None, db_url: str | None = None
) -> dict[str, Any]:
    """Runs side by side: metrics (best marked), series and their differences step by step
    (the document `orch compare --json` prints; see orchestrator/compare.py)."""
    from orchestrator.compare import compare as compare_runs

    ws = Workspace(home, db_url)
    try:
        return compare_runs(ws.store, run_ids)
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
