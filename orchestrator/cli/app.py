"""`orch`: the command line, and the composition root.

A thin layer: parse the options, call the Python API (`orchestrator.api`) over the
workspace `orchestrator.config.Workspace` composes from `ORCH_HOME` (default
`./.orchestrator`), `ORCH_DB_URL` and `ORCH_ARTIFACTS`, print. `ORCH_LOG_FORMAT=json`
switches logs to JSON lines. Every `OrchestratorError` ends as one line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.base import (  # noqa: F401  (Env, app: names scripts and the launchpad use)
    ENV,
    DaskOpt,
    Env,
    ExecutorOpt,
    ImageOpt,
    JsonOpt,
    ParamOpt,
    ParamsFileOpt,
    _backend_options,
    _json,
    _overrides,
    app,
    cache_app,
    execute_graph,
)
from orchestrator.errors import OrchestratorError
from orchestrator.state import STEP_KINDS


def _run_graph(
    graph: Any,
    *,
    target: str,
    executor: str,
    as_json: bool,
    options: dict[str, Any],
    trigger: dict[str, Any] | None = None,
    run_id: str | None = None,
    resumed_from: str | None = None,
    selection: Any = None,
) -> Any:
    """Run through the API with live progress and log lines on stderr; print the result."""
    from orchestrator import api
    from orchestrator.cli.progress import print_result

    result = execute_graph(
        graph, target=target, executor=executor, quiet=as_json, options=options,
        trigger=trigger, run_id=run_id, resumed_from=resumed_from, selection=selection,
    )  # fmt: skip
    if as_json:  # the document `orchestrator.run(...).to_json()` gives, outputs named
        tracked = ENV.store.tracking.summaries([result.run_id])[result.run_id]
        doc = api.from_result(result, graph, ENV.artifacts, tracked).to_json()
        sys.stdout.write(_json(doc) + "\n")
    else:
        print_result(result)
    return result


@app.command()
def run(
    target: Annotated[
        str, typer.Argument(help="A built-in pipeline name or path/to/file.py:function.")
    ],
    param: ParamOpt = None,
    params_file: ParamsFileOpt = None,
    executor: ExecutorOpt = "thread",
    dask_address: DaskOpt = None,
    image: ImageOpt = None,
    as_json: JsonOpt = False,
    trigger: Annotated[str | None, typer.Option("--trigger", hidden=True)] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", hidden=True)] = None,
    only: Annotated[str | None, typer.Option("--only", help="Run only STEP[,STEP].")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Run STEP and downstream.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Run STEP and upstream.")] = None,
    tags: Annotated[str | None, typer.Option("--tags", help="Run steps tagged A[,B].")] = None,
) -> None:
    """Validate, plan and run a pipeline; cached steps are reused; step logs go to stderr.
    With --only, --from, --to or --tags only part of it runs; the steps it needs upstream
    come from the cache."""
    from orchestrator.engine.selection import Selection
    from orchestrator.loader import load_target, normalize_target

    graph = load_target(target).build(_overrides(param, params_file))
    result = _run_graph(
        graph,
        target=normalize_target(target),
        executor=executor,
        as_json=as_json,
        options=_backend_options(dask_address, image),
        trigger=json.loads(trigger) if trigger else None,
        run_id=run_id,
        selection=Selection.parse(only, from_, to, tags),
    )
    raise typer.Exit(0 if result.status == "succeeded" else 1)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to resume (an id prefix is enough).")],
    executor: Annotated[str | None, typer.Option("--executor", "-e")] = None,
    dask_address: DaskOpt = None,
    image: ImageOpt = None,
    as_json: JsonOpt = False,
    trigger: Annotated[str | None, typer.Option("--trigger", hidden=True)] = None,
) -> None:
    """Run a failed, interrupted or cancelled run again, reusing every step it finished."""
    from orchestrator.engine.selection import Selection
    from orchestrator.loader import load_target

    old = ENV.store.get_run(run_id)
    trig = old.get("trigger") or {}
    if trig.get("kind") == "sweep":  # the same combinations, not the plain pipeline
        from orchestrator.sweeps import rebuild

        graph = rebuild(load_target(old["target"]), trig).graph
    else:
        graph = load_target(old["target"]).build(dict(old["params"]))
    result = _run_graph(
        graph,
        target=old["target"],
        executor=executor or old["executor"],
        as_json=as_json,
        resumed_from=old["id"],
        trigger=_resume_trigger(trig, json.loads(trigger) if trigger else None),
        options=_backend_options(dask_address, image),
        selection=Selection.from_json(trig.get("selection")),
    )
    raise typer.Exit(0 if result.status == "succeeded" else 1)


def _resume_trigger(old: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any] | None:
    """A resumed sweep keeps its sweep record (with who launched the resume, if given)."""
    if old.get("kind") != "sweep":
        return given
    return old | {"launch": given} if given else old


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="A running run (an id prefix is enough).")],
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait until it is recorded cancelled.")
    ] = 0.0,
) -> None:
    """Ask a running run to stop: its running steps are interrupted, it ends `cancelled`."""
    from orchestrator.cli.control import cancel_run

    cancel_run(ENV.store, run_id, wait)


@app.command()
def runs(
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    pipeline: Annotated[str | None, typer.Option("--pipeline")] = None,
    status: Annotated[str | None, typer.Option("--status")] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Show this metric (repeatable).")
    ] = None,
    sort: Annotated[
        str | None, typer.Option("--sort", help="By a metric or parameter; -NAME: descending.")
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option("--columns", help="Comma list: params, metrics, or names (params.C)."),
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="NAME=VALUE or NAME>NUMBER, e.g. C=1 'r2>0.8'."),
    ] = None,
    search: Annotated[
        str | None, typer.Option("--search", help="Text in run id, pipeline, trigger or tags.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs, newest first (or sorted, filtered, with param/metric columns)."""
    if not (metric or sort or columns or filters or search):
        from orchestrator.cli.render import print_runs

        print_runs(ENV.store.list_runs(limit, pipeline, status), as_json)
        return
    from orchestrator.cli.tables import print_experiments
    from orchestrator.experiments import columns as pick_columns
    from orchestrator.experiments import query

    rows = query(
        ENV.store, pipeline=pipeline, status=status, limit=limit, sort=sort,
        filters=filters, search=search,
    )  # fmt: skip
    print_experiments(rows, pick_columns(rows, columns, metric or []), as_json)


@app.command()
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more runs (id prefixes).")],
    as_json: JsonOpt = False,
) -> None:
    """Runs side by side: metrics (best marked), then what differs from the first run."""
    from orchestrator.cli.tables import print_compare
    from orchestrator.compare import compare as compare_runs

    print_compare(compare_runs(ENV.store, run_ids), as_json)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument()],
    as_json: JsonOpt = False,
    logs: Annotated[bool, typer.Option("--logs/--no-logs")] = True,
    full_logs: Annotated[
        bool, typer.Option("--full-logs", help="Every log line (default: each step's last 200).")
    ] = False,
) -> None:
    """A run: its steps, params, artifacts, errors and logs."""
    from orchestrator.cli.show import print_show

    run_row = ENV.store.get_run(run_id)
    steps, attempts = ENV.store.step_runs(run_row["id"]), ENV.store.attempts(run_row["id"])
    tracked = ENV.store.tracking.summaries([run_row["id"]])[run_row["id"]]
    print_show(run_row, steps, as_json, logs, full_logs, attempts, tracked)


@app.command()
def logs(
    run_id: Annotated[str, typer.Argument(help="A run (an id prefix is enough).")],
    step: Annotated[str | None, typer.Argument(help="Only this step (lines unprefixed).")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Print new lines until the run ends.")
    ] = False,
) -> None:
    """A run's step logs (`STEP | line`); live lines of running steps with --follow."""
    from orchestrator.cli.logs import print_logs

    print_logs(ENV, run_id, step, follow)


@app.command()
def artifact(
    run_id: Annotated[str, typer.Argument(help="A run (an id prefix is enough).")],
    step: Annotated[str, typer.Argument(help="One of its steps.")],
    output: Annotated[
        str | None, typer.Argument(help="For a step with several outputs: a name or index.")
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Write it: .csv/.parquet (frames), .json, else the stored file."),
    ] = None,
) -> None:
    """Preview one output of a step of a run, or write it to a file."""
    from orchestrator.api import history
    from orchestrator.cli.artifact import show_artifact, write_artifact

    run_row = ENV.store.get_run(run_id)
    past = history(ENV, run_row, ENV.store.step_runs(run_row["id"]))
    which: str | int | None = int(output) if output and output.isdigit() else output
    if to is None:
        show_artifact(past, ENV.artifacts, step, which)
        return
    what = write_artifact(past, ENV.artifacts, step, which, to)
    typer.echo(f"wrote {to}: {what}")


@app.command()
def explain(
    run_id: Annotated[str, typer.Argument()],
    step: Annotated[str, typer.Argument()],
    as_json: JsonOpt = False,
) -> None:
    """Why a step of a run ran, or was cached."""
    from orchestrator.cli.show import print_explain

    run_row = ENV.store.get_run(run_id)
    print_explain(run_row, ENV.store.step_runs(run_row["id"]), step, as_json)


@app.command()
def graph(
    target: Annotated[str, typer.Argument()],
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, mermaid or dot.")] = "text",
    param: Annotated[list[str] | None, typer.Option("--param", "-p")] = None,
    params_file: ParamsFileOpt = None,
) -> None:
    """Show a pipeline's graph without running it."""
    from orchestrator.cli.render import print_graph
    from orchestrator.loader import load_target

    g = load_target(target).build(_overrides(param, params_file))
    print_graph(g, fmt)


@cache_app.command("gc")
def cache_gc(
    keep_runs: Annotated[
        int | None,
        typer.Option("--keep-runs", help="Keep the N newest runs' artifacts (default: all runs)."),
    ] = None,
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            help="Keep unreferenced files younger than this (e.g. 10m, 2h, 0): "
            "a live run may still record them.",
        ),
    ] = "10m",
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Delete artifacts that no kept run, running run or registered model references."""
    from orchestrator.artifacts.gc import collect

    report = collect(ENV.store, ENV.artifacts, keep_runs=keep_runs, grace=grace, dry_run=dry_run)
    for line in report.lines():
        typer.echo(line)


@app.command()
def kinds() -> None:
    """List step kinds."""
    typer.echo(" ".join(STEP_KINDS))


# The commands registered by other modules, by the module that registers them: `orch CMD`
# imports only the module of CMD (`orch --help`, or a name no module has, imports them all).
ELSEWHERE = {
    "orchestrator.cli.ops": ("schedules", "daemon", "serve", "ui", "event", "events",
                             "monitors", "image"),
    "orchestrator.cli.registry": ("models", "promote", "alias"),
    "orchestrator.cli.reproduce": ("reproduce",),
    "orchestrator.cli.sweep": ("sweep", "sweep-table"),
}  # fmt: skip


def command_names(typer_app: typer.Typer) -> set[str]:
    """The names of the commands and command groups registered on `typer_app`."""
    names = {g.name for g in typer_app.registered_groups if g.name}
    for c in typer_app.registered_commands:
        if c.name:
            names.add(c.name)
        elif c.callback is not None:
            names.add(c.callback.__name__.replace("_", "-"))
    return names


def load_commands(args: list[str] | None = None) -> None:
    """Register the commands `orch ARGS` may run: none but this module's when ARGS names
    one of them, the one module that has it when another does, else every module."""
    import importlib

    name = args[0] if args else None
    if name is not None and name in command_names(app):
        return
    for module, names in ELSEWHERE.items():
        if name is None or name not in names:
            continue
        importlib.import_module(module)
        return
    for module in ELSEWHERE:
        importlib.import_module(module)


def main() -> None:
    from orchestrator.logs import configure

    configure(os.environ.get("ORCH_LOG_FORMAT", "console"))
    try:
        load_commands(sys.argv[1:])
        app()
    except OrchestratorError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted: resume with `orch resume RUN` (see `orch runs`)", err=True)
        sys.exit(130)
    finally:
        ENV.close()
