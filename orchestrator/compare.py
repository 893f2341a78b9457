"""Runs side by side: their metrics (the best marked), series, and exactly what differs.

`compare(store, run_ids)` reads two or more runs and returns one JSON-able document:

* `runs`: each run's id, pipeline, status, start and parameters;
* `metrics`: per name, each run's value, whether lower is better and the best run;
* `series`: per name, each run's points (`log_metric(..., step=N)`), by position;
* `differences`: for each run after the first, what differs from the first, step by
  step, in the words `orch explain` uses (cache/keys.py `diff`): parameters (old -> new),
  code (the function or constant), packages (name: old -> new version), input data (a
  data file's content, or an input's content and the step that produced it), and steps
  only one of the runs has. Each difference names the step it touched.

Invariants: the first run is the baseline; runs are given by id or unambiguous prefix;
fewer than two runs, or one run twice, is one `ParamError`; code is compared through the
cache index's fingerprints, so a step that never succeeded has parameters and inputs
compared but no code.
"""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrator.cache.keys import KeyParts, diff
from orchestrator.errors import ParamError

LOWER_IS_BETTER = re.compile(r"(loss|error|err$|rmse|mse|mae|mape|time|duration|latency)")

Row = dict[str, Any]


def lower_is_better(name: str) -> bool:
    """Whether smaller values of metric `name` are better (losses, errors, times)."""
    return bool(LOWER_IS_BETTER.search(name.lower()))


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def compare(store: Any, run_ids: list[str]) -> dict[str, Any]:
    """The comparison document of `run_ids` (the first is the baseline)."""
    if len(run_ids) < 2:
        raise ParamError(f"compare needs at least two runs, got {len(run_ids)}")
    rows = [store.get_run(r) for r in run_ids]
    ids = [r["id"] for r in rows]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ParamError(f"compare: run {twice[0]} is given twice")
    steps = {rid: store.step_runs(rid) for rid in ids}
    keys = [s.get("cache_key") for ss in steps.values() for s in ss]
    code = store.tracking.code(k for k in keys if k)
    tracked = store.tracking.summaries(ids)
    return {
        "runs": [_run(r, tracked[r["id"]]) for r in rows],
        "metrics": metrics_table(ids, tracked),
        "series": series_table(ids, tracked),
        "differences": [
            {"from": ids[0], "to": rid, "changes": differences(steps[ids[0]], steps[rid], code)}
            for rid in ids[1:]
        ],
    }


def _run(row: Row, tracked: dict[str, Any]) -> Row:
    return {
        "run_id": row["id"],
        "pipeline": row["pipeline"],
        "status": row["status"],
        "started_at": row["started_at"].isoformat() if row.get("started_at") else None,
        "params": {**dict(row.get("params") or {}), **tracked["params"]},
    }


def metrics_table(ids: list[str], tracked: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{name: {"values": {run: value}, "lower_is_better": bool, "best": run}}."""
    names = sorted({n for rid in ids for n in tracked[rid]["metrics"]})
    out = {}
    for name in names:
        values = {rid: tracked[rid]["metrics"].get(name) for rid in ids}
        have = {rid: v for rid, v in values.items() if v is not None}
        low = lower_is_better(name)
        pick = min if low else max
        best = pick(have, key=lambda rid: have[rid]) if have else None
        ties = [rid for rid, v in have.items() if best is not None and v == have[best]]
        out[name] = {
            "values": values,
            "lower_is_better": low,
            "best": best if len(ties) < len(have) or len(have) == 1 else None,
        }
    return out


def series_table(ids: list[str], tracked: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{name: {run: [{"position", "value", "step"}] by position}}."""
    names = sorted({n for rid in ids for n in tracked[rid]["series"]})
    return {
        name: {
            rid: sorted(tracked[rid]["series"].get(name, []), key=lambda p: p["position"])
            for rid in ids
        }
        for name in names
    }


def differences(old: list[Row], new: list[Row], code: dict[str, dict[str, str]]) -> list[Row]:
    """What differs from run `old` to run `new`, step by step, in pipeline order."""
    before, after = {s["name"]: s for s in old}, {s["name"]: s for s in new}
    producers = {o["hash"]: s["name"] for s in new for o in s.get("outputs") or []}
    out: list[Row] = []
    for name in [*after, *(n for n in before if n not in after)]:
        if name not in before or name not in after:
            which = "the second" if name in after else "the first"
            out.append(_change(name, "step", name, None, None, f"step only in {which} run"))
            continue
        out += step_changes(name, before[name], after[name], code, producers)
    return out


def _change(step: str, kind: str, name: str, old: Any, new: Any, text: str) -> Row:
    return {"step": step, "kind": kind, "name": name, "old": old, "new": new, "text": text}


def _parts(row: Row, code: dict[str, dict[str, str]]) -> KeyParts:
    return KeyParts(
        row.get("cache_key") or "",
        code.get(row.get("cache_key") or "", {}),
        dict(row.get("params") or {}),
        dict(row.get("inputs") or {}),
        "",
    )


def step_changes(
    step: str, old: Row, new: Row, code: dict[str, dict[str, str]], producers: dict[str, str]
) -> list[Row]:
    """One step's differences (parameters, data, code, packages, inputs)."""
    was, now = _parts(old, code), _parts(new, code)
    if not was.code or not now.code:  # a step that never succeeded: no fingerprint
        was, now = (
            KeyParts(p.key, {}, p.params, p.inputs, p.salt) for p in (was, now)
        )  # fmt: skip
    d = diff(now, {"code": was.code, "params": was.params, "inputs": was.inputs})
    out = [_param(step, k, o, n) for k, (o, n) in d["params"].items()]
    for key in d["code_changed"]:
        out.append(_code(step, key, was.code[key], now.code[key], "changed"))
    out += [_code(step, k, None, now.code[k], "added") for k in d["code_added"]]
    out += [_code(step, k, was.code[k], None, "removed") for k in d["code_removed"]]
    for arg in d["inputs"]:
        source = producers.get(now.inputs.get(arg, ""))
        origin = f", from step '{source}'" if source else ""
        text = f"input '{arg}' changed (new content hash{origin})"
        out.append(_change(step, "input", arg, was.inputs.get(arg), now.inputs.get(arg), text))
    return out


def _param(step: str, name: str, old: Any, new: Any) -> Row:
    if isinstance(new, dict) and "content" in new:  # a FileInput: the data file
        path = new.get("path")
        text = f"data file '{name}' changed: {path} (new content hash)"
        return _change(step, "data", name, (old or {}).get("content"), new["content"], text)
    text = f"parameter '{name}' changed: {_short(old)} -> {_short(new)}"
    return _change(step, "parameter", name, old, new, text)


def _code(step: str, key: str, old: str | None, new: str | None, how: str) -> Row:
    if key.startswith("package "):
        package = key.removeprefix("package ")
        text = f"package {package}: {old or 'absent'} -> {new or 'absent'}"
        return _change(step, "package", package, old, new, text)
    return _change(step, "code", key, old, new, f"code {how}: {key}")
