"""Cache keys for nodes and the explanation of a miss.

A node's key hashes its step's code fingerprint, its canonical parameters (a `FileInput`
parameter contributes its file's content hash), its input artifacts' content hashes and
the step's version salt; the predicate of a call's condition joins the code fingerprint
(as components named `condition ...`), so editing it re-runs the step. `explain_miss`
compares the components of a key with the closest earlier entry of the same step and
says what differs, naming the function, constant, parameter or input; `explain_hit` and
`explain_miss` both list what the code fingerprint could not follow, so a hit on code
the cache cannot see is never silent. A `FileInput` must name a regular file: a FIFO, a
device or a folder fails the step at once with one line naming the step, the parameter
and the path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from orchestrator.cache.fingerprint import UNFOLLOWED, code_fingerprint, unfollowed
from orchestrator.cache.hashing import (
    NotRegularFile,
    cache_key,
    canonical,
    digest,
    dumps,
    hash_file,
)
from orchestrator.errors import OrchestratorError, ParamError
from orchestrator.model.conditions import Condition
from orchestrator.model.graph import has_hash_content
from orchestrator.model.step import Node, Step, is_input


@dataclasses.dataclass(frozen=True, slots=True)
class KeyParts:
    key: str
    code: dict[str, str]
    params: dict[str, Any]
    inputs: dict[str, str]
    salt: str


class KeyMaker:
    """Computes node keys; code fingerprints and each step's argument plan (which
    arguments hash a file's content) are memoised per step for the maker's life."""

    def __init__(self) -> None:
        self._code: dict[int, tuple[dict[str, str], str]] = {}
        self._plans: dict[int, tuple[Step[Any], list[tuple[str, Any, bool]]]] = {}

    def _plan(self, step: Step[Any]) -> list[tuple[str, Any, bool]]:
        """(name, default, hashes a file) of each argument of `step`, by name: the
        parameters `params` makes are in canonical order already."""
        got = self._plans.get(id(step))
        if got is None or got[0] is not step:
            args = sorted(step.arguments.values(), key=lambda a: a.name)
            got = (step, [(a.name, a.default, has_hash_content(a.annotation)) for a in args])
            self._plans[id(step)] = got
        return got[1]

    def code(self, step: Step[Any]) -> tuple[dict[str, str], str]:
        got = self._code.get(id(step.fn))
        if got is None:
            parts = code_fingerprint(step.fn)
            got = (parts, digest(parts))
            self._code[id(step.fn)] = got
        return got

    def params(self, node: Node) -> dict[str, Any]:
        """The node's parameters in canonical form (`canonical` of them is equal, keys in
        the same order): what its key hashes and its rows record."""
        out: dict[str, Any] = {}
        bindings = node.bindings
        for name, default, hashes_file in self._plan(node.step):
            value = bindings.get(name, default)
            if is_input(value):
                continue
            if hashes_file:
                path = Path(value)
                try:
                    out[name] = {"content": hash_file(path), "path": str(path)}
                except NotRegularFile as exc:
                    raise ParamError(
                        f"step '{node.name}' parameter '{name}': {path} is {exc.strerror}; "
                        "a FileInput must name a regular file"
                    ) from None
                except OSError as exc:
                    raise ParamError(
                        f"step '{node.name}' parameter '{name}': cannot read {path}: "
                        f"{exc.strerror or exc}"
                    ) from None
            elif name in bindings:
                out[name] = canonical(value)
            else:
                out[name] = _default(value)
        return out

    def make(self, node: Node, inputs: dict[str, str]) -> KeyParts:
        return self.make_many(node, [inputs])[0]

    def make_many(self, node: Node, inputs: list[dict[str, str]]) -> list[KeyParts]:
        """The keys of `node` with each of `inputs` (a mapped step's children): its code
        and parameters are read once, and the children share them."""
        code, code_digest = self.code(node.step)
        cond = node.condition
        if isinstance(cond, Condition) and cond.predicate is not None:
            code = {**code, **_predicate_code(cond.predicate)}
            code_digest = digest(code)
        params = self.params(node)
        params_json = dumps(params)
        salt = node.step.version
        out = []
        for one in inputs:
            ordered = dict(sorted(one.items()))
            hashes = [f"{k}={v}" for k, v in ordered.items()]
            key = cache_key(code_digest, params_json, hashes, salt)
            out.append(KeyParts(key, code, params, ordered, salt))
        return out


def _predicate_code(predicate: Any) -> dict[str, str]:
    """A condition's predicate as components of its step's code: `condition <name>`."""
    parts = code_fingerprint(predicate)
    return {k if k.startswith(UNFOLLOWED) else f"condition {k}": v for k, v in parts.items()}


def _default(value: Any) -> Any:
    try:
        return canonical(value)
    except OrchestratorError:
        return repr(value)


def _short(value: Any) -> str:
    text = dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def diff(parts: KeyParts, entry: dict[str, Any]) -> dict[str, Any]:
    old_code: dict[str, str] = entry["code"]
    changed = sorted(k for k in parts.code.keys() & old_code.keys() if parts.code[k] != old_code[k])
    added = sorted(parts.code.keys() - old_code.keys())
    removed = sorted(old_code.keys() - parts.code.keys())
    old_params: dict[str, Any] = entry["params"]
    params = {
        k: [old_params.get(k), parts.params.get(k)]
        for k in sorted(parts.params.keys() | old_params.keys())
        if old_params.get(k) != parts.params.get(k)
    }
    old_inputs: dict[str, str] = entry["inputs"]
    inputs = sorted(
        k
        for k in parts.inputs.keys() | old_inputs.keys()
        if parts.inputs.get(k) != old_inputs.get(k)
    )
    return {
        "code_changed": changed,
        "code_added": added,
        "code_removed": removed,
        "params": params,
        "inputs": inputs,
    }


def _size(d: dict[str, Any]) -> int:
    return sum(len(v) for v in d.values())


_BLIND: dict[int, tuple[dict[str, str], list[str]]] = {}  # id(code) -> (code, its lines)


def _not_followed(parts: KeyParts) -> list[str]:
    """What the code fingerprint could not follow, as lines; read once per code object
    (the children of a mapped step, and the steps of one function, share theirs)."""
    got = _BLIND.get(id(parts.code))
    if got is None or got[0] is not parts.code:
        if len(_BLIND) > 1024:
            _BLIND.clear()
        lines = [f"not followed: {what}" for what in unfollowed(parts.code)]
        got = _BLIND[id(parts.code)] = (parts.code, lines)
    return list(got[1])


def explain_hit(parts: KeyParts, run_id: str | None, how: str) -> dict[str, Any]:
    """Why `parts` hit: the same key as an earlier run, and what the key could not see."""
    summary = f"cached: same code, params and inputs as run {run_id}"
    blind = _not_followed(parts)
    reason: dict[str, Any] = {"cache": how, "summary": summary, "from_run": run_id}
    if blind:
        reason["summary"] = f"{summary}; {'; '.join(blind)}"
        reason["details"] = [summary, *blind]
    return reason


def explain_miss(parts: KeyParts, history: list[dict[str, Any]]) -> dict[str, Any]:
    """Why `parts` missed the cache, against the closest of this step's earlier entries."""
    if not history:
        first = "no cache entry for this step yet"
        blind = _not_followed(parts)
        if not blind:
            return {"cache": "miss", "summary": first}
        return {"cache": "miss", "summary": "; ".join([first, *blind]), "details": [first, *blind]}
    best, best_diff = None, None
    for entry in reversed(history[-50:]):
        d = diff(parts, entry)
        if best_diff is None or _size(d) < _size(best_diff):
            best, best_diff = entry, d
    assert best is not None and best_diff is not None
    lines = []
    for k in best_diff["code_changed"]:
        lines.append(f"code changed: {k}")
    for k in best_diff["code_added"]:
        lines.append(f"code added: {k}")
    for k in best_diff["code_removed"]:
        lines.append(f"code removed: {k}")
    for k, (old, new) in best_diff["params"].items():
        lines.append(f"parameter '{k}' changed: {_short(old)} -> {_short(new)}")
    for k in best_diff["inputs"]:
        lines.append(f"input '{k}' changed (new content hash)")
    if not lines:
        lines.append("version salt or cache format changed")
    lines += _not_followed(parts)
    return {
        "cache": "miss",
        "summary": "; ".join(lines),
        "details": lines,
        "compared_with_run": best.get("run_id"),
        "compared_with_key": best["cache_key"],
        "diff": best_diff,
    }
