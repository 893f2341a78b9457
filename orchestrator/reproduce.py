"""Rebuild a registered model version from its lineage, and check it bit for bit.

A version's *lineage* is the step run that produced its model artifact and every step
run upstream of it in the run that registered it (found by content hash: a step's
input hash is an output hash of the step run that made it). `reproduce` rebuilds it:

1. the package versions recorded for the run are compared with the installed ones, and
   a mismatch is an error before anything runs (`ignore_packages` runs anyway and
   names the packages in the verdict). With `image` (a base image holding the
   orchestrator), the rebuild runs instead on the Docker executor in an image holding the
   recorded versions (`orchestrator.execution.pinned`: built once, reused by its tag);
   what that image still cannot match (another Python) is named in the verdict;
2. every `FileInput` of the lineage must still hold the data it held (by content hash,
   read from the run's working folder): a missing or changed file is an error naming
   the input and the step;
3. the project's source files snapshotted at registration are written to a temporary
   folder and the run's target is run from there, with the run's parameters, up to the
   producing step, by `python -m orchestrator run` in a fresh temporary store. Module
   identities do not depend on folders, so the rebuilt steps' cache keys are the
   original ones when code, parameters, inputs and packages are the same;
4. each lineage step's output hashes are compared with the original ones; the first
   step whose output differs is named with why: `code` (its code fingerprint differs),
   `package` (a package version in its fingerprint, or of the run, differs), `params`,
   `data` (an input's content hash differs), `environment` (all of those equal, but the
   original ran in Docker containers or on Dask workers and the rebuild here) or
   `nondeterminism` (all of those equal, and it ran here too).

Invariants: the original store is only read; the temporary store and folder are
removed afterwards, whatever happens; a version without a recorded run or snapshot is
one `OrchestratorError` naming it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.cache.hashing import hash_file
from orchestrator.cache.snapshot import installed_packages, python_version
from orchestrator.config import Workspace
from orchestrator.errors import OrchestratorError
from orchestrator.execution.context import ModelVersion
from orchestrator.store.registry import StoreRegistry

_EXECUTORS = ("thread", "process", "sequential")  # what runs here without a service


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a rebuild needs, read from the original store."""

    version: ModelVersion
    run: dict[str, Any]
    steps: list[dict[str, Any]]  # the lineage's step runs, upstream first
    sources: dict[str, str]
    env: dict[str, Any]

    @property
    def label(self) -> str:
        return f"model '{self.version.name}' v{self.version.version}"


@dataclasses.dataclass(frozen=True)
class StepCheck:
    """One lineage step: its original and rebuilt output hashes, and why they differ."""

    step: str
    original: list[str]
    rebuilt: list[str]
    reason: str | None = None  # code | package | params | data | environment | nondeterminism
    detail: str = ""

    @property
    def identical(self) -> bool:
        return self.original == self.rebuilt


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A rebuild's verdict: identical, or the first step whose output differs."""

    plan: Plan
    steps: list[StepCheck]
    packages: list[str]  # package mismatches run anyway (ignore_packages, or the image's)
    image: str | None = None  # the image the rebuild ran in (`--image`)
    pins: dict[str, str] = dataclasses.field(default_factory=dict)  # pinned in that image

    @property
    def first_difference(self) -> StepCheck | None:
        return next((s for s in self.steps if not s.identical), None)

    @property
    def identical(self) -> bool:
        return self.first_difference is None

    @property
    def verdict(self) -> str:
        """`identical`, or the first differing step and why, in one line."""
        first = self.first_difference
        if first is None:
            return "identical"
        return (
            f"differs: step '{first.step}' is the first whose output differs "
            f"({first.reason}: {first.detail})"
        )

    def to_json(self) -> dict[str, Any]:
        first = self.first_difference
        v = self.plan.version
        return {
            "model": v.name,
            "version": v.version,
            "run_id": v.run_id,
            "identical": self.identical,
            "verdict": self.verdict,
            "first_difference": None if first is None else _check_json(first),
            "steps": [_check_json(s) for s in self.steps],
            "sources": sorted(self.plan.sources),
            "package_mismatches": self.packages,
            "image": self.image,
            "pinned": self.pins,
        }


def _check_json(c: StepCheck) -> dict[str, Any]:
    return {
        "step": c.step,
        "identical": c.identical,
        "original": c.original,
        "rebuilt": c.rebuilt,
        "reason": c.reason,
        "detail": c.detail,
    }


# -- the plan ------------------------------------------------------------------------------
def plan(registry: StoreRegistry, name: str, selector: str) -> Plan:
    """The lineage, sources and environment of `name` at `selector` (3, v3, an alias)."""
    version = registry.resolve(name, selector)
    if version is None:
        raise OrchestratorError(f"model '{name}' has no production version; name a version")
    label = f"model '{name}' v{version.version}"
    if version.run_id is None:
        raise OrchestratorError(f"{label} was registered outside a run: it has no lineage")
    env = registry.environment(version.run_id)
    if env is None:
        raise OrchestratorError(
            f"{label} was registered without a code snapshot (before reproduce existed)"
        )
    run = registry.store.get_run(version.run_id)
    steps = lineage(registry.store.step_runs(version.run_id), version.artifact_hash)
    if not steps:
        raise OrchestratorError(
            f"{label}: no step of run {version.run_id} produced its artifact "
            f"{version.artifact_hash[:12]}"
        )
    return Plan(version, run, steps, registry.sources(version), env)


def _hashes(row: dict[str, Any]) -> list[str]:
    return [str(o["hash"]) for o in row.get("outputs") or []]


def lineage(rows: list[dict[str, Any]], artifact: str) -> list[dict[str, Any]]:
    """The step run that produced `artifact` and every step run upstream of it, in order.

    `rows` are in the order the steps started, so an input's producer is the latest step
    before its consumer that output its hash (a step passing its input through unchanged,
    as validation does, is the producer its consumers depend on)."""
    made: dict[str, str] = {}
    deps: dict[str, set[str]] = {}
    for row in rows:
        deps[row["name"]] = {made[h] for h in (row.get("inputs") or {}).values() if h in made}
        made.update({h: row["name"] for h in _hashes(row)})
    wanted: set[str] = set()
    todo = [made[artifact]] if artifact in made else []
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += deps[name]
    return [r for r in rows if r["name"] in wanted]


# -- checks before anything runs ----------------------------------------------------------
def package_mismatches(env: dict[str, Any]) -> list[str]:
    """`NAME RECORDED (installed: NOW)` for each recorded package not installed as it was."""
    now = installed_packages()
    lines = []
    if env["python"] != python_version():
        lines.append(f"python {env['python']} (running: {python_version()})")
    for name, version in sorted(dict(env["packages"]).items(), key=lambda kv: kv[0].lower()):
        if now.get(name) != version:
            lines.append(f"{name} {version} (installed: {now.get(name, 'none')})")
    return lines


def check_inputs(p: Plan) -> None:
    """Every data file of the lineage still there with its recorded content hash."""
    cwd = Path(p.env["cwd"])
    for row in p.steps:
        for param, value in sorted((row.get("params") or {}).items()):
            if not (isinstance(value, dict) and {"path", "content"} <= value.keys()):
                continue
            path = cwd / str(value["path"])
            where = f"{p.label}: input '{param}' of step '{row['name']}'"
            try:
                now = hash_file(path)
            except OSError:
                raise OrchestratorError(
                    f"{where} is gone: {path} (content {str(value['content'])[:12]}) "
                    "is not there any more"
                ) from None
            if now != value["content"]:
                raise OrchestratorError(
                    f"{where} is gone: {path} now holds other data (content {now[:12]}, "
                    f"recorded {str(value['content'])[:12]})"
                )


# -- the rebuild ---------------------------------------------------------------------------
def _target(p: Plan, src: Path) -> str:
    """The run's target, its pipeline file moved to the snapshot folder `src`."""
    target = str(p.run["target"])
    where, sep, attr = target.rpartition(":")
    root = p.env.get("root")
    if sep and where.endswith(".py") and root and Path(where).is_relative_to(root):
        relative = Path(where).relative_to(root).as_posix()
        if relative in p.sources:
            return f"{src / relative}:{attr}"
    return target


def _write_sources(sources: dict[str, str], src: Path) -> None:
    for relative, text in sources.items():
        path = src / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _child_env(src: Path, home: Path) -> dict[str, str]:
    """The rebuild's environment: its own store in `home`, the snapshot `src` first on the
    path and the working folder (where the edited project may be) not on it at all."""
    env = {k: v for k, v in os.environ.items() if k not in ("ORCH_DB_URL", "ORCH_ARTIFACTS")}
    env |= {"ORCH_HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    return env


def rebuild(p: Plan, tmp: Path, image: str | None = None) -> tuple[Workspace, str]:
    """Run the lineage from the snapshot in a fresh store under `tmp`: (that store, run id).
    With `image`, on the Docker executor with that image."""
    src, home = tmp / "src", tmp / "home"
    _write_sources(p.sources, src)
    params = tmp / "params.json"
    params.write_text(json.dumps(p.run["params"] or {}))
    executor = p.run["executor"] if p.run["executor"] in _EXECUTORS else "thread"
    env = _child_env(src, home)
    if image is not None:
        executor, env["ORCH_IMAGE"] = "docker", image
    args = ["run", _target(p, src), "--params-file", str(params), "--to", p.steps[-1]["name"]]
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args, "--executor", executor, "--json"],
        cwd=p.env["cwd"] if Path(p.env["cwd"]).is_dir() else tmp,  # inputs were checked
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        why = lines[-1] if lines else (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise OrchestratorError(f"the rebuild of {p.label} failed: {why}")
    store = Workspace(home, f"sqlite:///{home / 'orchestrator.db'}", home / "artifacts")
    return store, str(json.loads(proc.stdout)["run_id"])


# -- the verdict ---------------------------------------------------------------------------
def _split(code: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    packages = {k: v for k, v in code.items() if k.startswith("package ")}
    return {k: v for k, v in code.items() if k not in packages}, packages


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def why(
    old: dict[str, Any],
    new: dict[str, Any],
    codes: tuple[dict[str, str] | None, dict[str, str] | None],
    packages: list[str],
    elsewhere: str = "",
) -> tuple[str, str]:
    """(reason, detail) of a step whose rebuilt output differs from the original.
    `elsewhere`: how the original's place of execution differs from the rebuild's (it
    ran in containers, the rebuild here), the likelier cause when nothing else differs."""
    if codes[0] is not None and codes[1] is not None:
        (old_code, old_pkgs), (new_code, new_pkgs) = _split(codes[0]), _split(codes[1])
        if changed := _changed(old_code, new_code):
            return "code", "code changed: " + ", ".join(changed[:5])
        if changed := _changed(old_pkgs, new_pkgs):
            moved = [f"{k[8:]} {old_pkgs.get(k)} -> {new_pkgs.get(k)}" for k in changed]
            return "package", "package changed: " + ", ".join(moved)
    if changed := _changed(old.get("params") or {}, new.get("params") or {}):
        return "params", "parameter changed: " + ", ".join(changed)
    if changed := _changed(old.get("inputs") or {}, new.get("inputs") or {}):
        return "data", "input changed (other content hash): " + ", ".join(changed)
    if packages:
        return "package", "the run's package versions differ: " + "; ".join(packages)
    if elsewhere:
        return "environment", (
            f"same code, parameters, inputs and packages, yet another output: {elsewhere}"
        )
    return "nondeterminism", (
        "same code, parameters, inputs and packages, yet another output: "
        "the step does not give the same bytes twice"
    )


def compare(
    p: Plan,
    original: StoreRegistry,
    rebuilt: StoreRegistry,
    run_id: str,
    packages: list[str],
    image: str | None = None,
) -> list[StepCheck]:
    """Each lineage step's outputs, original against rebuilt run `run_id` (in `image`,
    or here), and why."""
    elsewhere = _elsewhere(p.run["executor"], image)
    new_rows = {r["name"]: r for r in rebuilt.store.step_runs(run_id)}
    checks = []
    for old in p.steps:
        new = new_rows.get(old["name"], {})
        check = StepCheck(old["name"], _hashes(old), _hashes(new))
        if not check.identical:
            codes = (_code(original, old), _code(rebuilt, new))
            reason, detail = why(old, new, codes, packages, elsewhere)
            check = dataclasses.replace(check, reason=reason, detail=detail)
        checks.append(check)
    return checks


def _elsewhere(executor: str, image: str | None) -> str:
    """What differs between where the original ran and where the rebuild did."""
    if executor in _EXECUTORS or (executor == "docker" and image is not None):
        return ""
    where = "in Docker containers" if executor == "docker" else f"on the {executor} executor"
    hint = "; pass --image to rebuild in a container" if executor == "docker" else ""
    return (
        f"the original ran {where} and the rebuild on this machine, where a library may "
        f"choose other CPU kernels or read other settings{hint}"
    )


def _code(registry: StoreRegistry, row: dict[str, Any]) -> dict[str, str] | None:
    key = row.get("cache_key")
    return registry.step_code(str(key)) if key else None


def imported_distributions(registry: StoreRegistry, p: Plan) -> set[str]:
    """The distributions whose modules the lineage's steps import (their fingerprints'
    `package MODULE` parts, mapped to distributions as installed here)."""
    import importlib.metadata

    by_module = importlib.metadata.packages_distributions()
    found: set[str] = set()
    for row in p.steps:
        for part in _code(registry, row) or {}:
            if part.startswith("package "):
                found.update(by_module.get(part.removeprefix("package "), []))
    return found


def _in_image(
    registry: StoreRegistry, p: Plan, base: str, log: Callable[[str], object]
) -> tuple[str, dict[str, str], list[str]]:
    """(image, pins, what it still differs in) for a rebuild with the recorded versions."""
    from orchestrator.execution.pinned import pinned_image

    needed = imported_distributions(registry, p)
    pinned = pinned_image(base, dict(p.env["packages"]), needed, log)
    left = (
        []
        if pinned.python == p.env["python"]
        else [f"python {p.env['python']} (image: {pinned.python})"]
    )
    return pinned.image, pinned.pins, left


def reproduce(
    registry: StoreRegistry,
    name: str,
    selector: str,
    ignore_packages: bool = False,
    image: str | None = None,
    log: Callable[[str], object] = print,
) -> Outcome:
    """Rebuild `name` at `selector` from its lineage and compare it; see the module doc.
    `image`: the base image of a rebuild in the recorded versions (None: here)."""
    p = plan(registry, name, selector)
    packages, pins, run_in = package_mismatches(p.env), {}, None
    if packages and image is None and not ignore_packages:
        raise OrchestratorError(
            f"{p.label} was built with other package versions: {'; '.join(packages)}; "
            "install those, pass --image to rebuild in a container with them, "
            "or --ignore-packages to rebuild anyway"
        )
    check_inputs(p)
    if image is not None:
        run_in, pins, packages = _in_image(registry, p, image, log)
    with tempfile.TemporaryDirectory(prefix="orch-reproduce-") as tmp:
        rebuilt, run_id = rebuild(p, Path(tmp), run_in)
        try:
            checks = compare(p, registry, rebuilt.registry(), run_id, packages, run_in)
            return Outcome(p, checks, packages, run_in, pins)
        finally:
            rebuilt.close()
