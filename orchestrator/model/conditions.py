"""Conditions on step calls: a step call runs only if an upstream value says so.

A call takes its condition at the call site, where the upstream outputs exist:
`deploy(model, _when=gate)` or `deploy.when(gate)(model)`, with `gate` a `bool` output
of an upstream step, or `_when=when(metrics, lambda m: m["r2"] > 0.8)`, a predicate on
an output of any type. (`@step(when=...)` cannot say it: a decorator runs before any
output exists, and one step may be called under different conditions.)

`check` runs while the graph is built, with the other checks, and normalises a node's
`condition` to a `Condition`. Invariants once the graph is built:

* a node's `condition` is None or a `Condition` whose source is an output of another
  node of the graph, and the graph has the edge source -> node (the condition's value
  is there when the node is ready);
* a `Condition` without a predicate reads a `bool` output; one with a predicate holds a
  callable that takes the value as its one argument.

What happens at run time is the engine's (`engine.conditions`). No I/O here.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from orchestrator.model.dag import Dag
from orchestrator.model.step import Node, Output
from orchestrator.model.types import type_name, unwrap


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """`source` holds (a `bool` output), or `predicate(value of source)` returns True."""

    source: Output
    predicate: Callable[[Any], bool] | None = None
    label: str | None = None

    @property
    def text(self) -> str:
        """How messages name it: `'evaluate.passed'`, `'r2 > 0.8' on 'evaluate'`."""
        if self.predicate is None:
            return f"'{self.source.label}'"
        name = self.label or getattr(self.predicate, "__name__", type(self.predicate).__name__)
        return f"'{name}' on '{self.source.label}'"


def when(
    output: Any, predicate: Callable[[Any], bool] | None = None, *, label: str | None = None
) -> Condition:
    """A condition for `_when=`: `when(metrics, lambda m: m["r2"] > 0.8, label="r2 > 0.8")`.

    The predicate runs in the engine on the output's value when the step is ready; its
    code (and what it reaches: constants, closures, helpers) enters the step's cache key.
    `label` names it in messages (default: the predicate's `__name__`).
    """
    return Condition(output, predicate, label)


def check(node: Node, by_name: dict[str, Node], dag: Dag, problems: list[str]) -> None:
    """Normalise `node.condition`, add its edge, or append one problem naming the step."""
    raw = node.condition
    if raw is None:
        return
    cond = raw if isinstance(raw, Condition) else Condition(raw) if _is_output(raw) else None
    problem = _problem(node.name, raw, cond, by_name)
    if problem:
        problems.append(problem)
        return
    assert cond is not None
    node.condition = cond
    dag.add_edge(cond.source.node, node.name)


def _is_output(value: Any) -> bool:
    return isinstance(value, Output)


def _problem(name: str, raw: Any, cond: Condition | None, by_name: dict[str, Node]) -> str | None:
    where = f"step '{name}' condition"
    if cond is None or not _is_output(cond.source):
        got = raw.source if isinstance(raw, Condition) else raw
        return (
            f"{where} must be a bool output of an upstream step or "
            f"`when(output, predicate)`, got {_short(got)} ({type(got).__name__})"
        )
    src = by_name.get(cond.source.node)
    if src is None:
        return f"{where} refers to unknown step '{cond.source.node}'"
    if src.name == name:
        return f"{where} refers to the step's own output"
    if cond.predicate is None:
        out_type = src.step.outputs[cond.source.index]
        if unwrap(out_type) is not bool:
            return (
                f"{where} '{cond.source.label}' is typed {type_name(out_type)}, not bool; "
                f"declare `-> bool` or pass a predicate: "
                f"when({cond.source.label}, lambda value: ...)"
            )
        return None
    return _predicate_problem(where, cond)


def _predicate_problem(where: str, cond: Condition) -> str | None:
    if not callable(cond.predicate):
        return (
            f"{where} on '{cond.source.label}': the predicate must be callable, got "
            f"{_short(cond.predicate)} ({type(cond.predicate).__name__})"
        )
    try:
        inspect.signature(cond.predicate).bind(None)
    except TypeError:
        return (
            f"{where} on '{cond.source.label}': the predicate must take one argument "
            "(the output's value)"
        )
    except ValueError:
        return None  # a builtin without a signature: trust it
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
