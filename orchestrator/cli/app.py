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

from orchestrator.config import Workspace
from orchestrator.errors import NotFound, OrchestratorError, ServingError, did_you_mean
from orchestrator.model.params import cli_overrides
from orchestrator.state import STEP_KINDS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Typed-step ML pipelines with a content-hash cache and a SQL metadata store.",
)
cache_app = typer.Typer(no_args_is_help=True, help="Manage the cache and artifact store.")
app.add_typer(cache_app, name="cache")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
DaskOpt = Annotated[
    str | None,
    typer.Option(
        "--dask-address", help="Dask scheduler tcp://host:port (default: a LocalCluster)."
    ),
]
ImageOpt = Annotated[
    str | None,
    typer.Option("--image", help="Docker image for steps that name none (default: ORCH_IMAGE)."),
]


def _backend_options(dask_address: str | None, image: str | None) -> dict[str, Any]:
    return {"dask_address": dask_address, "image": image}


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


ParamsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--params-file",
        help="A YAML, TOML or JSON file of parameters (nested keys: STEP.PARAM paths); "
        "--param wins over it.",
    ),
]


def _overrides(param: list[str] | None, params_file: Path | None = None) -> dict[str, Any]:
    """The run's parameter overrides, from every option of `run` that sets parameters."""
    return cli_overrides(param or [], params_file)


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
    from orchestrator.cli.progress import Progress, json_log_printer, print_log_line, print_result

    run_id = run_id or api.new_run_id()
    progress = Progress(graph, f"{graph.pipeline} ({len(graph.order)} steps)", quiet=as_json)
    json_logs = os.environ.get("ORCH_LOG_FORMAT") == "json"
    on_log = json_log_printer(run_id, graph.pipeline) if json_logs else print_log_line
    try:
        with progress:
            result = api.execute(
                ENV, graph, target=target, executor=executor, listener=progress, on_log=on_log,
                run_id=run_id, resumed_from=resumed_from, trigger=trigger, options=options,
                selection=selection,
            )  # fmt: skip
    except KeyboardInterrupt:
        # the run is recorded as interrupted; steps still running in pool threads are
        # abandoned rather than awaited, so Ctrl-C ends the command at once
        typer.echo(
            f"interrupted: run {run_id} is recorded; resume it with `orch resume {run_id}`",
            err=True,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        ENV.close()
        os._exit(130)
    if as_json:
        sys.stdout.write(_json(result.to_json()) + "\n")
    else:
        print_result(result)
    return result


@app.command()
def run(
    target: Annotated[
        str, typer.Argument(help="A built-in pipeline name or path/to/file.py:function.")
    ],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE or STEP.KEY=VALUE.")
    ] = None,
    params_file: ParamsFileOpt = None,
    executor: Annotated[
        str,
        typer.Option("--executor", "-e", help="thread, process, sequential, dask or docker."),
    ] = "thread",
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
) -> None:
    """Run a failed or interrupted run again, reusing every step it finished."""
    from orchestrator.engine.selection import Selection
    from orchestrator.loader import load_target

    old = ENV.store.get_run(run_id)
    graph = load_target(old["target"]).build(dict(old["params"]))
    result = _run_graph(
        graph,
        target=old["target"],
        executor=executor or old["executor"],
        as_json=as_json,
        resumed_from=old["id"],
        options=_backend_options(dask_address, image),
        selection=Selection.from_json((old.get("trigger") or {}).get("selection")),
    )
    raise typer.Exit(0 if result.status == "succeeded" else 1)


@app.command()
def runs(
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    pipeline: Annotated[str | None, typer.Option("--pipeline")] = None,
    status: Annotated[str | None, typer.Option("--status")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs, newest first."""
    from orchestrator.cli.render import print_runs

    print_runs(ENV.store.list_runs(limit, pipeline, status), as_json)


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
    from orchestrator.loader import output_names

    run_row = ENV.store.get_run(run_id)
    names = output_names(run_row["target"], run_row.get("params") or {})
    print_show(run_row, ENV.store.step_runs(run_row["id"]), as_json, logs, full_logs, names)


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


@app.command()
def models(name: Annotated[str | None, typer.Argument()] = None, as_json: JsonOpt = False) -> None:
    """Registered model versions, their stages and metrics."""
    from orchestrator.cli.render import print_models

    print_models(ENV.registry().versions(name), as_json)


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
def schedules(
    files: Annotated[list[Path], typer.Argument(help="Pipeline files defining Schedule objects.")],
    pause: Annotated[str | None, typer.Option("--pause", help="Pause this schedule.")] = None,
    resume_: Annotated[str | None, typer.Option("--resume", help="Resume this schedule.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the schedules defined in FILES with their next fire times; pause or resume one."""
    import datetime as dt

    from orchestrator.cli.render import print_schedules
    from orchestrator.triggers.daemon import load_schedules

    bound = load_schedules(files)
    names = {b.schedule.name for b in bound}
    for name, paused in ((pause, True), (resume_, False)):
        if name is not None:
            if name not in names:
                raise NotFound(f"no schedule '{name}'{did_you_mean(name, names)}")
            ENV.store.set_schedule_state(name, paused=paused)
    states = {b.schedule.name: ENV.store.schedule_state(b.schedule.name) for b in bound}
    print_schedules(bound, states, dt.datetime.now(dt.UTC), as_json)


@app.command()
def daemon(
    files: Annotated[
        list[Path],
        typer.Argument(help="Pipeline files defining schedules, triggers, sensors, monitors."),
    ],
    once: Annotated[
        bool, typer.Option("--once", help="Evaluate what is due, wait for its runs, exit.")
    ] = False,
    now: Annotated[
        str | None, typer.Option("--now", help="With --once: the time to evaluate at (ISO 8601).")
    ] = None,
) -> None:
    """Run schedules, monitors, event triggers and file sensors (SIGTERM stops gracefully)."""
    from orchestrator.logs import get_logger
    from orchestrator.triggers.daemon import load_definitions, parse_now, run_forever, run_once

    at = parse_now(now, once)
    bound = load_definitions(files)
    log = get_logger(component="daemon")

    def emit(event: dict[str, Any]) -> None:
        action = event.pop("action")
        log.info(
            action, **{("event_name" if k == "event" else k): str(v) for k, v in event.items()}
        )

    if once:
        run_once(ENV.store, ENV.artifacts, bound, at, ENV.home / "launches", emit)
        return
    log.info("daemon started", schedules=len(bound))
    run_forever(ENV.store, bound, emit, ENV.home / "launches", artifacts=ENV.artifacts)
    log.info("daemon stopped")


@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="A registered model name.")],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", help="Seconds between production checks.")
    ] = 1.0,
    request_log: Annotated[
        Path | None, typer.Option("--request-log", help="Append answered requests as JSON lines.")
    ] = None,
) -> None:
    """Serve predictions of a model's production version over HTTP; swaps on promotion."""
    from orchestrator.serving.server import serve as run_server

    run_server(
        ENV.registry(),
        model,
        host=host,
        port=port,
        poll_interval=poll_interval,
        request_log=request_log,
    )


@app.command()
def ui(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Pipeline files defining schedules, triggers and monitors."),
    ] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="0: a free port.")] = 0,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Allow changes with this token (default: ORCH_UI_TOKEN)."),
    ] = None,
) -> None:
    """Serve the web UI over this store (read-only unless a token is set)."""
    try:
        from orchestrator.ui.app import serve_ui
    except ImportError as exc:
        raise ServingError(
            f"the web UI needs its extra dependencies ({exc.name} is missing): "
            "pip install 'orchestrator[ui]'"
        ) from None
    definitions: list[Any] = []
    if files:
        from orchestrator.triggers.daemon import load_definitions

        definitions = load_definitions(files)
    serve_ui(
        ENV.store,
        ENV.artifacts,
        home=ENV.home,
        token=token or os.environ.get("ORCH_UI_TOKEN") or None,
        definitions=definitions,
        host=host,
        port=port,
    )


event_app = typer.Typer(no_args_is_help=True, help="Events that start pipelines.")
app.add_typer(event_app, name="event")


@event_app.command("emit")
def event_emit(
    name: Annotated[str, typer.Argument(help="The event's name.")],
    data: Annotated[list[str] | None, typer.Option("--data", "-d", help="KEY=VALUE.")] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Idempotency key: a repeat is dropped.")
    ] = None,
    check: Annotated[
        list[Path] | None,
        typer.Option("--check", help="Pipeline files: fail unless a trigger listens for NAME."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record an event durably; the daemon starts the pipelines whose triggers listen for it."""
    from orchestrator.triggers.events import check_event_name, parse_event_data

    name, payload = check_event_name(name), parse_event_data(data or [])
    if check:
        from orchestrator.triggers.daemon import load_definitions
        from orchestrator.triggers.events import EventTrigger

        known = sorted(
            {
                b.schedule.event
                for b in load_definitions(check)
                if isinstance(b.schedule, EventTrigger)
            }
        )
        if name not in known:
            raise NotFound(
                f"no trigger listens for event '{name}'{did_you_mean(name, known)}; "
                f"known events: {', '.join(known) or 'none'}"
            )
    event_id, new = ENV.store.emit_event(name, payload, "cli", key)
    if as_json:
        typer.echo(json.dumps({"event_id": event_id, "name": name, "duplicate": not new}))
    elif new:
        typer.echo(f"event {event_id} '{name}' recorded")
    else:
        typer.echo(f"event '{name}' with key {key!r} was already recorded as event {event_id}")


@event_app.command("serve")
def event_serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8787,
    token: Annotated[
        str | None, typer.Option("--token", help="Bearer token (default: ORCH_EVENT_TOKEN).")
    ] = None,
) -> None:
    """Accept events over HTTP: POST /events/NAME with `Authorization: Bearer TOKEN`."""
    from orchestrator.triggers.http import serve_events

    serve_events(ENV.store, token or os.environ.get("ORCH_EVENT_TOKEN", ""), host, port)


@app.command()
def events(
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50, as_json: JsonOpt = False
) -> None:
    """Recent events: what each started or why it was dropped."""
    from orchestrator.cli.render import print_events

    print_events(ENV.store.list_events(limit), as_json)


@app.command()
def monitors(
    check: Annotated[
        int | None, typer.Argument(help="A check id: show its full report.", show_default=False)
    ] = None,
    monitor: Annotated[str | None, typer.Option("--monitor", help="Only this monitor.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Drift and metric checks the daemon ran; with an id, that check's report per feature."""
    from orchestrator.cli.render import print_check, print_checks

    if check is None:
        print_checks(ENV.store.monitor_checks(limit, monitor), as_json)
        return
    from orchestrator.triggers.monitors import load_report

    print_check(load_report(ENV.store, ENV.artifacts, check), as_json)


image_app = typer.Typer(no_args_is_help=True, help="Docker images for the docker executor.")
app.add_typer(image_app, name="image")


@image_app.command("build")
def image_build(
    tag: Annotated[str, typer.Option("--tag", "-t", help="Name of the image to build.")],
    base: Annotated[str, typer.Option("--base", help="A base image with Python 3 and venv.")] = (
        "orchestrator-base:py311"
    ),
    code: Annotated[
        Path | None, typer.Option("--code", help="Your project folder, copied to /app.")
    ] = None,
    requirements: Annotated[
        Path | None, typer.Option("--requirements", "-r", help="Extra requirements to install.")
    ] = None,
) -> None:
    """Build an image with orchestrator, its dependencies and (optionally) your code."""
    from orchestrator.execution.image import build_image

    image_id = build_image(tag, base, code, requirements, log=lambda m: typer.echo(m, err=True))
    typer.echo(f"built {tag} ({image_id[:19]})")


@app.command()
def kinds() -> None:
    """List step kinds."""
    typer.echo(" ".join(STEP_KINDS))


ENV = Workspace()
Env = Workspace  # the name scripts used before the composition moved to orchestrator.config


def main() -> None:
    from orchestrator.logs import configure

    configure(os.environ.get("ORCH_LOG_FORMAT", "console"))
    try:
        app()
    except OrchestratorError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted: resume with `orch resume RUN` (see `orch runs`)", err=True)
        sys.exit(130)
    finally:
        ENV.close()


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
