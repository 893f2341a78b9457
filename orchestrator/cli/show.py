"""`orch show` and `orch explain`: one run's steps, params, outputs, errors and logs.

A step run that took more than one attempt lists each attempt (state, duration); the
earlier ones with their own error, traceback and log, the last one's are the step's.
`--json` gives every attempt of each step under `attempt_history`.

A step's log is capped when rendered for people: its last `LOG_LINES` lines, at most
`LOG_BYTES` bytes, under a note saying how many earlier lines were left out and how to
see them (`orch logs RUN STEP`, or `orch show --full-logs`). `--json` keeps the whole log.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from typing import Any

from orchestrator.cli.progress import duration_text as _dur
from orchestrator.cli.progress import out
from orchestrator.cli.progress import state_markup as _state
from orchestrator.cli.render import _dumps, _run_json
from orchestrator.errors import NotFound, did_you_mean

LOG_LINES = 200
LOG_BYTES = 64 * 1024


def capped_log(log: str, run_id: str, step: str) -> tuple[str | None, str]:
    """`(note or None, tail)`: the last LOG_LINES lines, LOG_BYTES characters at most."""
    log = log.rstrip("\n")
    tail = log[-LOG_BYTES:]
    if len(tail) < len(log):
        newline = tail.find("\n")
        tail = tail[newline + 1 :] if 0 <= newline < len(tail) - 1 else tail
    lines = tail.split("\n")
    if len(lines) > LOG_LINES:
        tail = "\n".join(lines[-LOG_LINES:])
    if len(tail) == len(log):
        return None, log
    hidden = len(log) - len(tail)
    note = (
        f"... {log.count(chr(10), 0, hidden)} earlier lines ({hidden} characters) not shown; "
        f"see them with `orch logs {run_id} {step}` or `orch show {run_id} --full-logs`"
    )
    return note, tail


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


def _out_label(i: int, o: dict[str, Any]) -> str:
    """A declared output name, else the output's index."""
    name = o.get("name")
    return str(i) if not name or re.fullmatch(r"output(_\d+)?", name) else name


def _print_tree(tree: dict[str, Any], indent: int) -> None:
    for key, value in tree.items():
        pad = "  " * indent
        if isinstance(value, dict) and value:
            out.print(f"{pad}{key}:", highlight=False, markup=False)
            _print_tree(value, indent + 1)
        else:
            out.print(
                f"{pad}{key}: {json.dumps(value, default=str)}", highlight=False, markup=False
            )


def _attempt_json(a: dict[str, Any], logs: bool) -> dict[str, Any]:
    keys = ("attempt", "state", "started_at", "ended_at", "duration", "error", "traceback")
    return {k: a.get(k) for k in keys} | ({"log": a.get("log")} if logs else {})


def _by_step(attempts: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for a in attempts:
        out.setdefault(a["step"], []).append(a)
    return out


def print_show(
    run: dict[str, Any],
    steps: list[dict[str, Any]],
    as_json: bool,
    logs: bool,
    full_logs: bool = False,
    attempts: list[dict[str, Any]] | None = None,
    tracked: dict[str, Any] | None = None,
) -> None:
    tries = _by_step(attempts or [])
    mine = {k: (tracked or {}).get(k) or {} for k in ("metrics", "params")}
    if as_json:
        docs = [
            _step_json(s, logs)
            | {"attempt_history": [_attempt_json(a, logs) for a in tries.get(s["name"], [])]}
            for s in steps
        ]
        print(_dumps(_run_json(run) | {"tracked": mine, "steps": docs}))
        return
    out.print(
        f"run [bold]{run['id']}[/]  pipeline {run['pipeline']}  {_state(run['status'])}  "
        f"executor {run['executor']}  target {run['target']}",
        highlight=False,
    )
    if run.get("resumed_from"):
        out.print(f"resumed from {run['resumed_from']}")
    trig = run.get("trigger") or {}
    if trig.get("kind") == "sweep" and "combinations" in trig:
        axes = ", ".join(f"{k}={v}" for k, v in (trig.get("grid") or {}).items())
        out.print(
            f"trigger: sweep ({len(trig['combinations'])} combinations of {axes}; "
            f"the table: orch sweep-table {run['id']})",
            highlight=False,
            markup=False,
        )
    elif trig.get("kind", "manual") != "manual":
        detail = ", ".join(f"{k} {v}" for k, v in trig.items() if k != "kind")
        out.print(f"trigger: {trig['kind']} ({detail})", highlight=False, markup=False)
    if trig.get("selection"):
        picked = " ".join(f"--{k} {','.join(v)}" for k, v in trig["selection"].items())
        out.print(f"selection: {picked}", highlight=False, markup=False)
    if run["params"]:
        out.print("params:", highlight=False)
        _print_tree(run["params"], 1)
    else:
        out.print("params: {}", highlight=False)
    _print_tracked(mine)
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
                f"output {_out_label(i, o)}: {o['hash'][:16]}  {o['type']}  {o['size']} bytes",
                highlight=False,
            )
        if len(tries.get(s["name"], [])) > 1:
            _print_attempts(run["id"], tries[s["name"]], logs, full_logs)
        if s.get("error"):
            out.print("error:", style="red")
            out.print(s["error"], highlight=False, markup=False)
        if logs and s.get("log"):
            _print_log(run["id"], s["name"], s["log"], full_logs)


def _print_tracked(tracked: dict[str, dict[str, Any]]) -> None:
    """What the steps logged (a failed step's last attempt included), one line each."""
    for label, key in (("metrics", "metrics"), ("tracked params", "params")):
        if tracked[key]:
            pairs = " ".join(f"{k}={_compact(v)}" for k, v in sorted(tracked[key].items()))
            out.print(f"{label}: {pairs}", highlight=False, markup=False)


def _compact(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else json.dumps(value, default=str)


def _print_attempts(
    run_id: str, attempts: list[dict[str, Any]], logs: bool, full_logs: bool
) -> None:
    """Each attempt's state; the earlier ones' error, traceback and log (the last one's
    are the step run's, printed after)."""
    for a in attempts:
        line = f"attempt {a['attempt']}: {a['state']}  {_dur(a['duration'])}".rstrip()
        out.print(line, highlight=False, markup=False)
        if a is attempts[-1]:
            continue
        if a.get("error"):
            text = a["error"] + (f"\n{a['traceback']}" if a.get("traceback") else "")
            out.print(textwrap.indent(text.rstrip(), "  "), highlight=False, markup=False)
        if logs and a.get("log"):
            _print_log(run_id, a["step"], a["log"], full_logs)


def _print_log(run_id: str, step: str, log: str, full: bool) -> None:
    out.print("log:", style="dim")
    note, tail = (None, log.rstrip()) if full else capped_log(log, run_id, step)
    if note:
        out.print(note, style="dim", highlight=False, markup=False)
    out.file.flush()
    sys.stdout.write(tail + "\n")  # as is: a long log is no work for the console renderer
    sys.stdout.flush()


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
