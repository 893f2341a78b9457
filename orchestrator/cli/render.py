"""What the CLI prints for runs, graph, models, schedules, events and monitor checks.

A running pipeline's output is in `cli.progress`; `show`, `explain`, `logs` and
`artifact` are in `cli.show`.

Human output goes through rich; `--json` prints exactly one JSON document on stdout.
Progress and logs go to stderr so stdout stays clean for scripts.
"""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text

from orchestrator.cli.progress import duration_text, out, state_markup
from orchestrator.errors import NotFound
from orchestrator.model.graph import Graph, type_name

_state = state_markup
_dur = duration_text


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


def print_runs(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(_dumps({"runs": [_run_json(r) for r in rows]}))
        return
    table = Table()
    for col in ("run", "pipeline", "status", "started", "duration", "steps", "trigger"):
        table.add_column(col)
    for r in rows:
        c = r["counts"]
        counts = " ".join(f"{n} {s}" for s, n in sorted(c.items()))
        dur = (r["ended_at"] - r["started_at"]).total_seconds() if r["ended_at"] else None
        table.add_row(
            r["id"],
            r["pipeline"],
            _state(r["status"]),
            r["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
            _dur(dur),
            counts,
            (r.get("trigger") or {}).get("kind", "manual"),
        )
    out.print(table)


def _run_json(r: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "pipeline",
        "target",
        "status",
        "params",
        "executor",
        "started_at",
        "ended_at",
        "resumed_from",
        "trigger",
        "error",
    )
    d = {k: r.get(k) for k in keys}
    d["run_id"] = d.pop("id")
    if "counts" in r:
        d["counts"] = r["counts"]
    return d


def print_graph(g: Graph, fmt: str) -> None:
    """text, mermaid or dot; a sub-pipeline call is a group (mermaid `subgraph`, dot
    `cluster_`), an input fed by a named output reads `y_train <- split_data.y_train`."""
    if fmt == "mermaid":
        print("\n".join(_mermaid(g)))
    elif fmt == "dot":
        print("\n".join(_dot(g)))
    elif fmt == "text":
        out.print(f"pipeline {g.pipeline}: {len(g.order)} steps", highlight=False)
        for group, pipe in sorted(g.groups.items()):
            out.print(f"  group {group}: pipeline {pipe}", highlight=False, markup=False)
        for n in g.order:
            node = g.nodes[n]
            ins = ", ".join(
                f"{arg} {'<< each of' if arg in node.mapped else '<-'} {o.label}"
                for arg, o in node.inputs().items()
            )
            if node.condition is not None:
                ins += f"{'; ' if ins else ''}when {node.condition.text}"
            declared = node.step.declared_output_names
            types = [type_name(node.output_type(i)) for i in range(len(declared))]
            outs = ", ".join(
                f"{name}: {t}" if name else t for name, t in zip(declared, types, strict=True)
            )
            mapped = " map" if node.mapped else ""
            out.print(
                f"  {n} ({node.step.kind}{mapped}) -> {outs}" + (f"   [{ins}]" if ins else ""),
                highlight=False,
                markup=False,
            )
    else:
        raise NotFound(f"unknown graph format '{fmt}'; choose text, mermaid or dot")


def _children(g: Graph) -> tuple[dict[str | None, list[str]], dict[str | None, list[str]]]:
    """Nodes and sub-groups by the group they sit in (None: the top level)."""
    nodes: dict[str | None, list[str]] = {}
    groups: dict[str | None, list[str]] = {}
    for n in g.order:
        nodes.setdefault(g.group_of(n), []).append(n)
    for group in sorted({*g.groups, *(k for k in nodes if k)}):
        groups.setdefault(g.group_of(group), []).append(group)
    return nodes, groups


def _mermaid(g: Graph) -> list[str]:
    ids = {n: n.replace(".", "__") for n in g.order}
    nodes, groups = _children(g)
    lines = ["flowchart TD"]

    def emit(group: str | None, depth: int) -> None:
        pad = "    " * depth
        for sub in groups.get(group, []):
            label = sub.rpartition(".")[2]
            pipe = g.groups.get(sub)
            title = f"{label} ({pipe})" if pipe and pipe != label else label
            lines.append(f'{pad}subgraph g_{sub.replace(".", "__")}["{title}"]')
            emit(sub, depth + 1)
            lines.append(f"{pad}end")
        for n in nodes.get(group, []):
            short = n.rpartition(".")[2]
            lines.append(f'{pad}{ids[n]}["{short} ({g.nodes[n].step.kind})"]')

    emit(None, 1)
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in sorted(g.dag.edges())]
    return lines


def _dot(g: Graph) -> list[str]:
    nodes, groups = _children(g)
    lines = [f'digraph "{g.pipeline}" {{', "  rankdir=LR;"]

    def emit(group: str | None, depth: int) -> None:
        pad = "  " * depth
        for sub in groups.get(group, []):
            pipe = g.groups.get(sub)
            label = f"{sub} ({pipe})" if pipe and pipe != sub.rpartition(".")[2] else sub
            lines.append(f'{pad}subgraph "cluster_{sub}" {{')
            lines.append(f'{pad}  label="{label}";')
            emit(sub, depth + 1)
            lines.append(f"{pad}}}")
        for n in nodes.get(group, []):
            short = n.rpartition(".")[2]
            node = g.nodes[n]
            if node.mapped:  # drawn as a stack: one node for all its children
                label = f"{short}\\n({node.step.kind}, map)"
                lines.append(f'{pad}"{n}" [label="{label}", shape=box3d];')
            else:
                lines.append(f'{pad}"{n}" [label="{short}\\n({node.step.kind})"];')

    emit(None, 1)
    lines += [f'  "{a}" -> "{b}";' for a, b in sorted(g.dag.edges())]
    return [*lines, "}"]


def print_models(versions: list[Any], as_json: bool) -> None:
    if as_json:
        print(
            _dumps(
                {
                    "models": [
                        {
                            "name": v.name,
                            "version": v.version,
                            "stage": v.stage,
                            "metrics": v.metrics,
                            "run_id": v.run_id,
                            "artifact_hash": v.artifact_hash,
                            "data_hash": v.data_hash,
                            "params": v.params,
                            "reason": v.reason,
                            "created_at": v.created_at,
                        }
                        for v in versions
                    ]
                }
            )
        )
        return
    table = Table()
    for col in ("model", "version", "stage", "metrics", "run", "reason"):
        table.add_column(col)
    for v in versions:
        metrics = " ".join(
            f"{k}={val:.4f}" if isinstance(val, int | float) else f"{k}={val}"
            for k, val in sorted(v.metrics.items())
        )
        table.add_row(v.name, str(v.version), v.stage, metrics, v.run_id or "", v.reason)
    out.print(table)


def print_schedules(bound: list[Any], states: dict[str, Any], now: Any, as_json: bool) -> None:
    from orchestrator.triggers.schedules import next_fire

    rows = []
    for b in bound:
        sch, state = b.schedule, states[b.schedule.name]
        paused = sch.paused or state["paused"]
        rows.append(
            {
                "name": sch.name,
                "pipeline": b.target,
                "cron": sch.cron,
                "timezone": sch.timezone,
                "catchup": sch.catchup,
                "concurrency": sch.concurrency,
                "paused": paused,
                "next_fire": None if paused else next_fire(sch, now).isoformat(),
                "last_tick": state["cursor"].isoformat() if state["cursor"] else None,
            }
        )
    if as_json:
        print(_dumps({"schedules": rows}))
        return
    table = Table()
    for col in (
        "schedule",
        "cron",
        "timezone",
        "next fire (UTC)",
        "last tick",
        "policy",
        "pipeline",
    ):
        table.add_column(col)
    for r in rows:
        nxt = "paused" if r["paused"] else r["next_fire"]
        table.add_row(
            r["name"],
            r["cron"],
            r["timezone"],
            nxt,
            r["last_tick"] or "-",
            f"{r['catchup']}/{r['concurrency']}",
            r["pipeline"],
        )
    out.print(table)


def print_events(rows: list[dict[str, Any]], as_json: bool) -> None:
    keys = ("id", "name", "data", "source", "status", "reason", "run_id", "created_at")
    if as_json:
        print(_dumps({"events": [{k: r.get(k) for k in keys} for r in rows]}))
        return
    table = Table()
    for col in ("event", "name", "data", "status", "run", "reason", "received"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            Text(json.dumps(r["data"])),
            r["status"],
            r["run_id"] or "",
            Text(r["reason"] or ""),
            r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)


_CHECK_KEYS = (
    "id", "monitor", "kind", "model", "version", "source", "rows", "drifted", "value",
    "report_hash", "summary", "event_id", "created_at",
)  # fmt: skip


def print_checks(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(_dumps({"checks": [{k: r.get(k) for k in _CHECK_KEYS} for r in rows]}))
        return
    table = Table()
    for col in ("check", "monitor", "model", "verdict", "rows", "event", "summary", "checked"):
        table.add_column(col)
    for r in rows:
        fired = "drift" if r["kind"] == "drift" else "below"
        table.add_row(
            str(r["id"]),
            r["monitor"],
            f"{r['model']} v{r['version']}",
            f"[red]{fired}[/red]" if r["drifted"] else "ok",
            str(r["rows"]),
            "" if r["event_id"] is None else str(r["event_id"]),
            r["summary"],
            r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
        )
    out.print(table)


def print_check(check: dict[str, Any], as_json: bool) -> None:
    """One check with its report: per feature for drift, the metrics for a metric check."""
    report = check.get("report") or {}
    if as_json:
        print(_dumps({k: check.get(k) for k in _CHECK_KEYS} | {"report": report}))
        return
    out.print(f"check {check['id']} by monitor [bold]{check['monitor']}[/bold]: {check['summary']}")
    model = f"{check['model']} v{check['version']}"
    out.print(f"model {model}, {check['rows']} rows of {check['source']}")
    if check["event_id"] is not None:
        out.print(f"emitted event {check['event_id']}")
    if check["kind"] == "drift" and report:
        table = Table()
        for col in ("feature", "verdict", "PSI", "KS statistic", "KS p-value", "reason"):
            table.add_column(col)
        for f in report.get("features", []):
            p = f.get("ks_pvalue")
            table.add_row(
                f["feature"],
                "[red]DRIFT[/red]" if f["drifted"] else "ok",
                f"{f['psi']:.4f}",
                "" if f.get("ks_statistic") is None else f"{f['ks_statistic']:.4f}",
                "" if p is None else f"{p:.3g}",
                f["reason"],
            )
        out.print(table)
    elif report:
        for name, value in sorted((report.get("metrics") or {}).items()):
            out.print(f"  {name}: {value:.4f}")
