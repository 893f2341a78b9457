"""What `orch runs` prints with experiment columns, and what `orch compare` prints.

The runs table is `print_runs`' table plus one column per chosen parameter or metric
(`params.NAME`, `metrics.NAME`, from orchestrator/experiments.py); `--json` adds each
run's `metrics` and `params`. The comparison prints the metrics side by side (the best
run's value marked `*`), then each run's differences from the first, one line per
difference naming its step. `--json` prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from orchestrator.cli.progress import duration_text, out, state_markup
from orchestrator.cli.render import _run_json
from orchestrator.experiments import text_of, value_of


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


def print_experiments(rows: list[dict[str, Any]], extra: list[str], as_json: bool) -> None:
    """Runs with the `extra` columns (`params.C`, `metrics.r2`)."""
    if as_json:
        docs = [_run_json(r) | {"params": r["all_params"], "metrics": r["metrics"]} for r in rows]
        print(_dumps({"runs": docs}))
        return
    table = Table()
    for col in ("run", "pipeline", "status", "started", "duration", *extra):
        table.add_column(col, justify="right" if col.startswith("metrics.") else "left")
    for r in rows:
        dur = (r["ended_at"] - r["started_at"]).total_seconds() if r["ended_at"] else None
        cells = [r["id"], r["pipeline"], state_markup(r["status"])]
        cells += [r["started_at"].strftime("%Y-%m-%d %H:%M:%S"), duration_text(dur)]
        for col in extra:
            value = value_of(r, col)
            cells.append("" if value is None else text_of(value))
        table.add_row(*cells)
    out.print(table)


def print_compare(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(_dumps(doc))
        return
    ids = [r["run_id"] for r in doc["runs"]]
    table = Table(title="metrics (* best)")
    table.add_column("metric")
    for rid in ids:
        table.add_column(rid, justify="right")
    for name, m in doc["metrics"].items():
        cells = [name + (" (lower is better)" if m["lower_is_better"] else "")]
        for rid in ids:
            value = m["values"][rid]
            mark = " *" if rid == m["best"] else ""
            cells.append("" if value is None else f"{value:.6g}{mark}")
        table.add_row(*cells)
    if doc["metrics"]:
        out.print(table)
    else:
        out.print("no metrics logged by these runs", markup=False)
    for d in doc["differences"]:
        changes = d["changes"]
        out.print(f"\n{d['to']} vs {d['from']}: {len(changes) or 'no'} differences", markup=False)
        for c in changes:
            out.print(f"  {c['step']}: {c['text']}", markup=False, highlight=False)
