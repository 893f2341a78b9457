"""Partial runs: which steps a run executes, and which it only takes from the cache. Pure.

A `Selection` holds the filters of `orch run --only A,B --from A --to B --tags t,u`:

* `only`: exactly these steps;
* `from_`: these steps and everything downstream of them;
* `to`: these steps and everything upstream of them;
* `tags`: the steps carrying at least one of these tags (`@step(tags=...)`).

Every filter given narrows the selection (they intersect). `plan` turns a selection
into a `Plan` over a graph: `selected`, the steps that run as usual (cached when their
key is), and `cache_only`, the steps upstream of the selection that it needs: their
outputs are taken from the cache and they never run. Steps neither selected nor needed
are not part of the run. Invariant: `members` (selected | cache_only) is closed upstream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from orchestrator.errors import SelectionError, did_you_mean
from orchestrator.model.graph import Graph


@dataclasses.dataclass(frozen=True)
class Selection:
    only: tuple[str, ...] = ()
    from_: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.only or self.from_ or self.to or self.tags)

    def to_json(self) -> dict[str, list[str]]:
        names = {"only": self.only, "from": self.from_, "to": self.to, "tags": self.tags}
        return {k: list(v) for k, v in names.items() if v}

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> Selection:
        doc = doc or {}
        return cls(*(tuple(doc.get(k) or ()) for k in ("only", "from", "to", "tags")))

    @classmethod
    def parse(
        cls,
        only: str | None = None,
        from_: str | None = None,
        to: str | None = None,
        tags: str | None = None,
    ) -> Selection:
        """From the CLI's comma-separated values."""
        return cls(*(_split(v) for v in (only, from_, to, tags)))

    def flags(self) -> str:
        """The CLI flags that make this selection, e.g. `--from split --tags fast`."""
        parts = [f"--{k} {','.join(v)}" for k, v in self.to_json().items()]
        return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class Plan:
    selected: frozenset[str]
    cache_only: frozenset[str]

    @property
    def members(self) -> frozenset[str]:
        return self.selected | self.cache_only


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(",") if p.strip())


def plan(graph: Graph, selection: Selection) -> Plan:
    """The steps `selection` runs on `graph` and those it takes from the cache."""
    everything = frozenset(graph.order)
    if not selection:
        return Plan(everything, frozenset())
    _check_names(graph, selection)
    chosen = set(everything)
    if selection.only:
        chosen &= set(selection.only)
    if selection.from_:
        chosen &= _closure(graph, selection.from_, Graph.descendants)
    if selection.to:
        chosen &= _closure(graph, selection.to, Graph.ancestors)
    if selection.tags:
        wanted = set(selection.tags)
        chosen &= {n for n, node in graph.nodes.items() if wanted & set(node.step.tags)}
    if not chosen:
        raise SelectionError(
            f"the selection {selection.flags()} matches no step of pipeline '{graph.pipeline}'"
        )
    needed = _closure(graph, chosen, Graph.ancestors)
    return Plan(frozenset(chosen), frozenset(needed - chosen))


def _closure(graph: Graph, names: Iterable[str], walk: Any) -> set[str]:
    out: set[str] = set()
    for n in names:
        out.add(n)
        out |= walk(graph, n)
    return out


def _check_names(graph: Graph, selection: Selection) -> None:
    problems = []
    for flag, names in (("only", selection.only), ("from", selection.from_), ("to", selection.to)):
        for name in names:
            if name not in graph.nodes:
                problems.append(f"--{flag}: no step '{name}'{did_you_mean(name, graph.nodes)}")
    known = sorted({t for node in graph.nodes.values() for t in node.step.tags})
    for tag in selection.tags:
        if tag not in known:
            hint = did_you_mean(tag, known)
            problems.append(f"--tags: no step has tag '{tag}'{hint}")
    if problems:
        steps = ", ".join(graph.order)
        raise SelectionError(f"pipeline '{graph.pipeline}': {'; '.join(problems)} (steps: {steps})")


def upfront(graph: Graph, p: Plan) -> list[str]:
    """The cache-only steps whose key is known before anything runs (all their upstream is
    cache-only too), in topological order: each can be looked up before the run starts."""
    out = []
    for n in graph.order:
        if n in p.cache_only and all(a in p.cache_only for a in graph.ancestors(n)):
            out.append(n)
    return out


def never_computed(steps: list[str], target: str) -> str:
    """The error for needed outputs that are not in the cache, with the command to fix it."""
    names = ", ".join(f"'{n}'" for n in steps)
    noun, verb, it = ("step", "was", "it") if len(steps) == 1 else ("steps", "were", "them")
    return (
        f"{noun} {names} {verb} never run with these inputs; "
        f"run {it} first: orch run {target} --to {','.join(steps)}"
    )
