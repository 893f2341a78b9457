"""Executor routing: which executor runs a step. The one place this is decided.

`route(step, placement)` answers with an executor name; executors only execute what
they are given. The rules, in order:

1. the run's executor is `sequential`: every step runs there (a debugging run stays
   one step at a time, whatever the hints say);
2. the step's hint `executor` names a local pool (`thread`, `process`, `sequential`):
   that pool;
3. on `docker`, a step runs on the local thread pool when it has no image (neither the
   hint `image` nor the executor's default image), or when it talks to the metadata
   store (`hints={"store": True}`) and the store is the embedded SQLite file, which a
   container cannot share;
4. otherwise the run's executor.

`Placement` is what routing needs to know of the run: its executor's name, the Docker
default image and the metadata store's URL. It is plain data, so routing stays pure.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.model.step import Step

LOCAL_POOLS = ("thread", "process", "sequential")


@dataclasses.dataclass(frozen=True, slots=True)
class Placement:
    executor: str
    image: str | None = None
    db_url: str | None = None

    @property
    def network_db(self) -> bool:
        return bool(self.db_url) and not str(self.db_url).startswith("sqlite")


def route(step: Step[Any], placement: Placement) -> str:
    """The name of the executor that runs `step` in a run placed by `placement`."""
    if placement.executor == "sequential":
        return "sequential"
    hint = step.hints.get("executor")
    if hint in LOCAL_POOLS:
        return str(hint)
    if placement.executor == "docker" and not in_container(step, placement):
        return "thread"
    return placement.executor


def in_container(step: Step[Any], placement: Placement) -> bool:
    """Whether a step of a Docker run runs in a container (rule 3 above)."""
    if not (step.hints.get("image") or placement.image):
        return False
    return not step.hints.get("store") or placement.network_db


def placement_of(executor: str, ex: Any) -> Placement:
    """The placement of a run on `executor`, read from the configuration of `ex`."""
    return Placement(executor, getattr(ex, "image", None), getattr(ex, "db_url", None))
