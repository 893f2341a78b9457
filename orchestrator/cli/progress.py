"""What a running pipeline prints: live step states, live step log lines, the final table.

Everything but the final table goes to stderr, so `--json` keeps stdout for its one
document. On a terminal the step states are a redrawn table; elsewhere one line per
change. Step log lines are printed as `STEP | line` as they are written (or as JSON log
lines when `ORCH_LOG_FORMAT=json`).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from collections.abc import Callable, Collection
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.model.graph import Graph

out = Console()
err = Console(stderr=True)
if not out.is_terminal:
    out = Console(width=160)
if not err.is_terminal:
    err = Console(stderr=True, width=160)

STYLE = {
    "succeeded": "green",
    "cached": "cyan",
    "failed": "red",
    "skipped": "yellow",
    "running": "blue",
    "pending": "dim",
    "interrupted": "magenta",
    "cancelled": "magenta",
    "retrying": "yellow",
}


def state_markup(s: str) -> str:
    return f"[{STYLE.get(s, 'white')}]{s}[/]"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


class Progress:
    """Live per-step progress on stderr: a redrawn table on a terminal, else one line per change."""

    def __init__(
        self,
        graph: Graph,
        run_label: str | None = None,
        quiet: bool = False,
        steps: Collection[str] | None = None,
    ) -> None:
        """`steps`: the steps of a partial run (default: every step of `graph`)."""
        self.graph, self.quiet = graph, quiet
        self.order = [n for n in graph.order if steps is None or n in steps]
        self.states = {n: ("pending", "") for n in self.order}
        self.children: dict[str, dict[str, str]] = {}  # mapped step -> child -> state
        self.sizes: dict[str, int] = {}  # mapped step -> how many children it has
        self.lock = threading.Lock()
        self.live: Live | None = None
        self.label = run_label or f"{graph.pipeline} ({len(self.order)} steps)"
        if not quiet and err.is_terminal:
            self.live = Live(self._table(), console=err, refresh_per_second=8, transient=True)

    def _table(self) -> Table:
        table = Table(title=self.label, title_justify="left")
        for col in ("step", "kind", "state", "note"):
            table.add_column(col)
        for n in self.order:
            state, note = self.states[n]
            table.add_row(n, self.graph.nodes[n].step.kind, state_markup(state), note)
        return table

    def _child(self, name: str, state: str) -> str | None:
        """For a child `train[3]` of a mapped step on screen: update its step's counts and
        return the step's name (its line shows `3/10 done`); None for any other step."""
        base, bracket, _ = name.partition("[")
        if not bracket or base not in self.states:
            return None
        kids = self.children.setdefault(base, {})
        kids[name] = state
        done = sum(s in ("succeeded", "cached") for s in kids.values())
        failed = sum(s == "failed" for s in kids.values())
        total = self.sizes.get(base, len(kids))
        note = f"{done}/{total} elements done" + (f", {failed} failed" if failed else "")
        self.states[base] = (self.states[base][0], note)
        return base

    def __call__(self, name: str, state: str, info: dict[str, Any]) -> None:
        if "children" in info:
            self.sizes[name] = int(info["children"])
        with self.lock:
            base = self._child(name, state)
            if base is not None:
                if self.live is not None:
                    self.live.update(self._table())
                elif state in ("failed", "retrying") and not self.quiet:
                    stamp = dt.datetime.now().strftime("%H:%M:%S")
                    err.print(f"[dim]{stamp}[/] {name:<24} {state_markup(state)}", highlight=False)
                return
        note = ""
        if state == "retrying":
            note = f"attempt {info.get('attempt')} failed; retry in {info.get('delay'):g}s"
        elif "duration" in info:
            note = duration_text(info["duration"])
        elif "reason" in info:
            note = str(info["reason"])
        elif "children" in info:
            note = f"0/{info['children']} elements done"
        with self.lock:
            self.states[name] = (state, note)
            if self.live is not None:
                self.live.update(self._table())
            elif not self.quiet:
                stamp = dt.datetime.now().strftime("%H:%M:%S")
                err.print(
                    f"[dim]{stamp}[/] {name:<24} {state_markup(state)} {note}", highlight=False
                )

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)


def print_log_line(step: str, line: str) -> None:
    """One step log line on stderr, prefixed with its step (as is, unless a live table is
    drawn there: then through it, so the table stays below the lines)."""
    if err.is_terminal:
        err.print(f"{step} | {line}", markup=False, highlight=False, soft_wrap=True)
    else:
        sys.stderr.write(f"{step} | {line}\n")


def json_log_printer(run_id: str, pipeline: str) -> Callable[[str, str], None]:
    """Step log lines as JSON log lines, bound to the run and step like the engine's own."""

    def write(step: str, line: str) -> None:
        doc = {
            "event": line,
            "source": "step log",
            "pipeline": pipeline,
            "run_id": run_id,
            "step": step,
            "level": "info",
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        }
        print(json.dumps(doc), file=sys.__stderr__, flush=True)

    return write


def print_result(result: Any) -> None:
    """The final table of `orch run`, and each failed step's error with the fix commands."""
    table = Table(
        title=f"run {result.run_id}  {result.pipeline}  {state_markup(result.status)}  "
        f"{duration_text(result.duration)}",
        title_justify="left",
    )
    for col in ("step", "kind", "state", "duration", "cache key", "why"):
        table.add_column(col)
    for s in result.steps:
        why = (s.error or "").splitlines()[0] if s.error else (s.reason or {}).get("summary", "")
        table.add_row(
            s.name,
            s.kind,
            state_markup(s.state),
            duration_text(s.duration) if s.state != "cached" else "",
            (s.cache_key or "")[:12],
            Text(why),  # user text: never read as markup
        )
    out.print(table)
    failed = [s for s in result.steps if s.state == "failed"]
    for s in failed:
        err.print(Text(f"step '{s.name}' failed:", style="red"), Text(s.error or ""), sep="\n")
    if failed:
        err.print(f"details: orch show {result.run_id}    resume: orch resume {result.run_id}")
