"""`orch` commands for what runs without a person: schedules, the daemon, events, monitors,
model serving, the web UI and Docker images. Each parses its options and calls into
`orchestrator.triggers`, `orchestrator.serving`, `orchestrator.ui` or the image builder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.base import ENV, JsonOpt, app
from orchestrator.errors import NotFound, ServingError, did_you_mean


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
    model: Annotated[
        str,
        typer.Argument(
            help="A registered model: NAME (its production version), NAME@ALIAS or NAME@VERSION."
        ),
    ],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", help="Seconds between checks of the version.")
    ] = 1.0,
    request_log: Annotated[
        Path | None, typer.Option("--request-log", help="Append answered requests as JSON lines.")
    ] = None,
) -> None:
    """Serve predictions of a model version over HTTP; swaps when it is promoted or the
    alias moves. The server records itself in the store (the model page shows it)."""
    from orchestrator.serving.server import serve as run_server
    from orchestrator.store.model_servers import ModelServers, ServerBeacon

    servers = ModelServers(ENV.store)
    run_server(
        ENV.registry(),
        model,
        host=host,
        port=port,
        poll_interval=poll_interval,
        request_log=request_log,
        beacon=lambda name, selector, url: ServerBeacon(servers, name, selector, url),
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
    extra: Annotated[
        list[str] | None,
        typer.Option("--extra", help="An optional part of orchestrator to install (dask, ...)."),
    ] = None,
) -> None:
    """Build an image with orchestrator, its dependencies and (optionally) your code."""
    from orchestrator.execution.image import build_image

    image_id = build_image(
        tag,
        base,
        code,
        requirements,
        log=lambda m: typer.echo(m, err=True),
        extras=tuple(extra or ()),
    )
    typer.echo(f"built {tag} ({image_id[:19]})")
