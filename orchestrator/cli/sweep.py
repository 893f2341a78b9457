"""What `orch sweep` prints: every combination with its parameters and metrics, best first.

On a terminal, a rich table; otherwise plain columns separated by two spaces (one
header line, one line per combination) that scripts and logs read as they are; with
`--json`, one JSON list of rows (`run_id`, `combination`, `params`, `metrics`,
`status`). Rows arrive ranked (`orchestrator.sweeps.Sweep.table`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.table import Table

from orchestrator.cli.progress import out


def print_sweep(result: Any, as_json: bool) -> None:
    """Print the table of a `Sweep` (see the module docstring)."""
    rows = result.table()
    if as_json:
        doc = [{"run_id": result.run.run_id, **r} for r in rows]
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        return
    header, lines = _cells(rows, result.metric)
    direction = "higher" if result.maximize else "lower"
    ranked = f"ranked by {result.metric} ({direction} is better)" if result.metric else "no metrics"
    title = f"sweep run {result.run.run_id}: {len(rows)} combinations, {ranked}"
    if sys.stdout.isatty():
        table = Table(title=title)
        for col in header:
            table.add_column(col)
        for line in lines:
            table.add_row(*line)
        out.print(table)
        return
    print(title)
    widths = [max(len(c) for c in col) for col in zip(header, *lines, strict=True)]
    for line in [header, *lines]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _cells(rows: list[dict[str, Any]], metric: str | None) -> tuple[list[str], list[list[str]]]:
    params = list(dict.fromkeys(k for r in rows for k in r["params"]))
    metrics = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    if metric in metrics:
        metrics.remove(metric)
        metrics.insert(0, metric)
    header = ["rank", "combination", *params, *metrics, "status"]
    lines = []
    for i, r in enumerate(rows, 1):
        lines.append(
            [
                str(i),
                r["combination"],
                *(_text(r["params"].get(p)) for p in params),
                *(_number(r["metrics"].get(m)) for m in metrics),
                r["status"],
            ]
        )
    return header, lines


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
