"""Removes a runner's containers when the runner ends, however it ends (SIGKILL too).

Run as `python -m orchestrator.execution.reaper` by the Docker executor, one per
executor, in a session of its own (the signal that stops the runner's process group
does not stop it). It reads lines on stdin: `+ID` when the runner has created a
container, `-ID` when the runner has removed it (or keeps it on purpose). Its stdin is
a pipe whose only writer is the runner, so end of file means the runner has ended or
closed the executor: the reaper then force-removes every container still listed, and
exits. A container thus outlives its runner by the time `docker rm -f` takes.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
from typing import IO, Any

_FULL_ID = re.compile(r"[0-9a-f]{64}")


def read_until_eof(lines: IO[str]) -> list[str]:
    """The containers listed (`+ID`) and not taken back (`-ID`) when `lines` ends."""
    live: dict[str, None] = {}
    for line in lines:
        op, cid = line[:1], line[1:].rstrip("\n")
        if not _FULL_ID.fullmatch(cid):
            continue  # never a prefix, which the engine would match to another container
        if op == "+":
            live[cid] = None
        elif op == "-":
            live.pop(cid, None)
    return list(live)


def remove(client: Any, containers: list[str]) -> None:
    for cid in containers:
        with contextlib.suppress(Exception):  # already gone, or the engine is gone
            client.api.remove_container(cid, force=True)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import docker

    client = docker.from_env(timeout=60)  # ready before it is needed: removal is quick
    remove(client, read_until_eof(sys.stdin))


if __name__ == "__main__":
    main()
