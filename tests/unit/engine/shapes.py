"""Standard small graphs of the run unit tests, built from real steps (no execution).

`diamond()`::

    load ─┬─> left ──┬─> join ──> report
          └─> right ─┘
    load ───> side                      (side is tagged "docs"; join, report "model")
"""

from __future__ import annotations

from orchestrator import pipeline, step
from orchestrator.model.graph import Graph


@step(kind="ingest")
def load(n: int = 3) -> list[int]:
    return list(range(n))


@step
def left(xs: list[int]) -> list[int]:
    return [x + 1 for x in xs]


@step
def right(xs: list[int]) -> list[int]:
    return [x * 2 for x in xs]


@step(tags=("model",))
def join(a: list[int], b: list[int]) -> int:
    return sum(a) + sum(b)


@step(tags=("model", "final"))
def report(total: int) -> str:
    return f"total {total}"


@step(tags=("docs",))
def side(xs: list[int]) -> int:
    return len(xs)


@pipeline
def diamond_pipeline(n: int = 3):
    xs = load(n)
    report(join(left(xs), right(xs)))
    side(xs)


def diamond(**params: object) -> Graph:
    return diamond_pipeline.build(dict(params))
