"""What the CLI prints: live progress, the final step table, runs, show, explain, graph, models.

Human output goes through rich; `--json` prints exactly one JSON document on stdout.
Progress and logs go to stderr so stdout stays clean for scripts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from orchestrator.errors import ExecutorError, NotFound, did_you_mean
from orchestrator.model.graph import Graph, type_name

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
    "retrying": "yellow",
}


def _state(s: str) -> str:
    return f"[{STYLE.get(s, 'white')}]{s}[/]"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


class Progress:
    """Live per-step progress on stderr: a redrawn table on a terminal, else one line per change."""

    def __init__(self, graph: Graph, run_label: str, quiet: bool) -> None:
        self.graph, self.quiet = graph, quiet
        self.states = {n: ("pending", "") for n in graph.order}
        self.lock = threading.Lock()
        self.live: Live | None = None
        self.label = run_label
        if not quiet and err.is_terminal:
            self.live = Live(self._table(), console=err, refresh_per_second=8, transient=True)

    def _table(self) -> Table:
        table = Table(title=self.label, title_justify="left")
        for col in ("step", "kind", "state", "note"):
            table.add_column(col)
        for n in self.graph.order:
            state, note = self.states[n]
            table.add_row(n, self.graph.nodes[n].step.kind, _state(state), note)
        return table

    def __call__(self, name: str, state: str, info: dict[str, Any]) -> None:
        note = ""
        if state == "retrying":
            note = f"attempt {info.get('attempt')} failed; retry in {info.get('delay'):g}s"
        elif "duration" in info:
            note = _dur(info["duration"])
        with self.lock:
            self.states[name] = (state, note)
            if self.live is not None:
                self.live.update(self._table())
            elif not self.quiet:
                stamp = dt.datetime.now().strftime("%H:%M:%S")
                err.print(f"[dim]{stamp}[/] {name:<24} {_state(state)} {note}", highlight=False)

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)


def run_pipeline(
    env: Any,
    graph: Graph,
    *,
    target: str,
    executor: str,
    as_json: bool,
    resumed_from: str | None = None,
    options: dict[str, Any] | None = None,
    trigger: dict[str, Any] | None = None,
    run_id: str | None = None,
    selection: Any = None,
) -> Any:
    from orchestrator.execution.backends import NAMES, make_executor
    from orchestrator.execution.worker import install_capture
    from orchestrator.logs import get_logger
    from orchestrator.run.engine import Engine, new_run_id

    if executor not in NAMES:  # before the run is recorded
        raise ExecutorError(f"unknown executor '{executor}'; choose one of {', '.join(NAMES)}")
    run_id = run_id or new_run_id()
    log = get_logger(pipeline=graph.pipeline, run_id=run_id)
    factory = env.registry_factory()
    opts = {"db_url": env.db_url, **(options or {})}

    def executors(name: str) -> Any:
        return make_executor(name, env.artifacts, registry_factory=factory, options=opts)

    install_capture()
    progress = Progress(graph, f"{graph.pipeline} ({len(graph.order)} steps)", quiet=as_json)
    engine = Engine(env.store, env.artifacts, executors, listener=progress, logger=log)
    try:
        engine.executor(executor)  # an unreachable cluster fails before the run is recorded
    except BaseException:
        engine.close()
        raise
    try:
        with progress:
            result = engine.run(
                graph,
                target=target,
                executor=executor,
                run_id=run_id,
                resumed_from=resumed_from,
                trigger=trigger,
                selection=selection,
            )
    except KeyboardInterrupt:
        # the run is recorded as interrupted; steps still running in pool threads are
        # abandoned rather than awaited, so Ctrl-C ends the command at once
        err.print(f"interrupted: run {run_id} is recorded; resume it with `orch resume {run_id}`")
        sys.stdout.flush()
        sys.stderr.flush()
        env.store.close()
        os._exit(130)
    finally:
        engine.close()
    if as_json:
        sys.stdout.write(_dumps(result.to_json()) + "\n")
        return result
    _print_result(result)
    return result


def _print_result(result: Any) -> None:
    table = Table(
        title=f"run {result.run_id}  {result.pipeline}  {_state(result.status)}  "
        f"{_dur(result.duration)}",
        title_justify="left",
    )
    for col in ("step", "kind", "state", "duration", "cache key", "why"):
        table.add_column(col)
    for s in result.steps:
        why = (s.error or "").splitlines()[0] if s.error else (s.reason or {}).get("summary", "")
        table.add_row(
            s.name,
            s.kind,
            _state(s.state),
            _dur(s.duration) if s.state != "cached" else "",
            (s.cache_key or "")[:12],
            why,
        )
    out.print(table)
    failed = [s for s in result.steps if s.state == "failed"]
    for s in failed:
        err.print(f"[red]step '{s.name}' failed:[/]\n{s.error}", highlight=False, markup=False)
    if failed:
        err.print(f"details: orch show {result.run_id}    resume: orch resume {result.run_id}")


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


def _step_json(s: dict[str, Any], logs: bool = True) -> dict[str, Any]:
    keys = (
        "name",
        "kind",
        "state",
        "attempts",
        "started_at",
        "ended_at",
        "duration",
        "cache_key",
        "params",
        "inputs",
        "outputs",
        "error",
        "reason",
    )
    d = {k: s.get(k) for k in keys}
    if logs:
        d["log"] = s.get("log")
    return d


def print_show(run: dict[str, Any], steps: list[dict[str, Any]], as_json: bool, logs: bool) -> None:
    if as_json:
        print(_dumps(_run_json(run) | {"steps": [_step_json(s, logs) for s in steps]}))
        return
    out.print(
        f"run [bold]{run['id']}[/]  pipeline {run['pipeline']}  {_state(run['status'])}  "
        f"executor {run['executor']}  target {run['target']}",
        highlight=False,
    )
    if run.get("resumed_from"):
        out.print(f"resumed from {run['resumed_from']}")
    trig = run.get("trigger") or {}
    if trig.get("kind", "manual") != "manual":
        detail = ", ".join(f"{k} {v}" for k, v in trig.items() if k != "kind")
        out.print(f"trigger: {trig['kind']} ({detail})", highlight=False, markup=False)
    if trig.get("selection"):
        picked = " ".join(f"--{k} {','.join(v)}" for k, v in trig["selection"].items())
        out.print(f"selection: {picked}", highlight=False, markup=False)
    out.print(f"params: {json.dumps(run['params'], default=str)}", highlight=False, markup=False)
    for s in steps:
        out.rule(f"{s['name']}  ({s['kind']})  {s['state']}  {_dur(s['duration'])}", align="left")
        out.print(
            f"cache key: {s['cache_key'] or '-'}   attempts: {s['attempts']}", highlight=False
        )
        if s.get("reason"):
            out.print(f"why: {s['reason'].get('summary')}", highlight=False, markup=False)
        if s.get("params"):
            out.print(
                f"params: {json.dumps(s['params'], default=str)}", highlight=False, markup=False
            )
        for arg, h in (s.get("inputs") or {}).items():
            out.print(f"input  {arg}: {h[:16]}", highlight=False)
        for i, o in enumerate(s.get("outputs") or []):
            out.print(
                f"output {i}: {o['hash'][:16]}  {o['type']}  {o['size']} bytes", highlight=False
            )
        if s.get("error"):
            out.print("error:", style="red")
            out.print(s["error"], highlight=False, markup=False)
        if logs and s.get("log"):
            out.print("log:", style="dim")
            out.print(s["log"].rstrip(), highlight=False, markup=False)


def print_explain(
    run: dict[str, Any], steps: list[dict[str, Any]], name: str, as_json: bool
) -> None:
    by_name = {s["name"]: s for s in steps}
    s = by_name.get(name)
    if s is None:
        raise NotFound(
            f"run {run['id']} has no step '{name}'{did_you_mean(name, by_name)}; "
            f"its steps: {', '.join(by_name)}"
        )
    reason = s.get("reason") or {}
    if as_json:
        print(
            _dumps(
                {
                    "run_id": run["id"],
                    "step": name,
                    "state": s["state"],
                    "cache_key": s["cache_key"],
                    "reason": reason,
                }
            )
        )
        return
    verb = {
        "cached": "was cached",
        "succeeded": "ran",
        "failed": "ran and failed",
        "skipped": "was skipped",
    }.get(s["state"], s["state"])
    out.print(f"step '{name}' of run {run['id']} {verb}.", highlight=False)
    details = reason.get("details") or [reason.get("summary", "no explanation recorded")]
    for line in details:
        out.print(f"  - {line}", highlight=False, markup=False)
    if reason.get("compared_with_run"):
        out.print(
            f"  (compared with the closest earlier cache entry, from run "
            f"{reason['compared_with_run']})",
            highlight=False,
        )


def print_graph(g: Graph, fmt: str) -> None:
    edges = sorted(g.dag.edges())
    if fmt == "mermaid":
        lines = ["flowchart TD"]
        lines += [f'    {n}["{n} ({g.nodes[n].step.kind})"]' for n in g.order]
        lines += [f"    {a} --> {b}" for a, b in edges]
        print("\n".join(lines))
    elif fmt == "dot":
        lines = [f'digraph "{g.pipeline}" {{', "  rankdir=LR;"]
        lines += [f'  "{n}" [label="{n}\\n({g.nodes[n].step.kind})"];' for n in g.order]
        lines += [f'  "{a}" -> "{b}";' for a, b in edges]
        print("\n".join([*lines, "}"]))
    elif fmt == "text":
        out.print(f"pipeline {g.pipeline}: {len(g.order)} steps", highlight=False)
        for n in g.order:
            node = g.nodes[n]
            ins = ", ".join(
                f"{arg} <- {o.node}" + (f"[{o.index}]" if o.index else "")
                for arg, o in node.inputs().items()
            )
            outs = ", ".join(type_name(t) for t in node.step.outputs)
            out.print(
                f"  {n} ({node.step.kind}) -> {outs}" + (f"   [{ins}]" if ins else ""),
                highlight=False,
                markup=False,
            )
    else:
        raise NotFound(f"unknown graph format '{fmt}'; choose text, mermaid or dot")


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
            json.dumps(r["data"]),
            r["status"],
            r["run_id"] or "",
            r["reason"] or "",
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
