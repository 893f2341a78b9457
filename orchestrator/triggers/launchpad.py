"""A pre-started `orch` process that waits for the arguments of one run.

The daemon keeps one such spare while it runs: the spare has imported the CLI, the
engine and the store (about 0.6 s of imports on this kind of machine) before any tick is
due, so a tick's run starts within tens of milliseconds instead of after a new
interpreter's start-up. It imports none of the user's code: the pipeline file is loaded
only when the job arrives, so a run always uses the code as it is on disk then.

Protocol: one JSON line on stdin, `{"args": [...], "log": "path"}`. stdin and stdout
then point at /dev/null, stderr is appended to `log`, and the CLI runs with `args`; the
process exits with the CLI's exit code. End of input before a job (the daemon stopped or
replaced it) exits 0 having run nothing.
"""

from __future__ import annotations

import json
import os
import sys


def _warm() -> None:
    import orchestrator.cli.app  # noqa: F401
    import orchestrator.cli.render  # noqa: F401
    import orchestrator.engine.loop  # noqa: F401
    import orchestrator.execution.backends  # noqa: F401
    import orchestrator.loader  # noqa: F401
    import orchestrator.store.metadata  # noqa: F401
    from orchestrator.logs import configure

    configure(os.environ.get("ORCH_LOG_FORMAT", "console"))  # imports the log renderers
    import typer.main

    orchestrator.cli.app.load_commands()  # every command module, whichever a launch runs
    typer.main.get_command(orchestrator.cli.app.app)  # builds the command tree typer defers
    try:  # typer's parameter coercion, otherwise imported on the first parse
        import typer._adapters  # noqa: F401
    except ImportError:
        pass

    try:  # what most ML pipelines load first; optional for the spare
        import pandas  # noqa: F401
    except ImportError:
        pass


def main() -> None:
    _warm()
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return
    job = json.loads(line)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    sys.argv = ["orch", *job["args"]]
    from orchestrator.cli.app import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
