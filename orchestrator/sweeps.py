"""Sweeps from Python: one run over many combinations, and the table that ranks them.

    result = orchestrator.sweep(housing, grid={"train.C": [0.1, 1, 10]})
    result = housing.sweep(grid={"train.C": "log:0.01..10"}, random=20, seed=1)
    result.run          # the orchestrator Run that ran every combination
    result.table()      # one row per combination, best first
    result.best         # the best row
    orchestrator.get_sweep(run_id)   # the same result, from the store, later

A sweep is a run whose trigger is `{"kind": "sweep", ...}` with the grid, the seed and
each combination (its name, values, resolved parameters and evaluate steps), so its table
is rebuilt from the store alone. A combination's *metrics* are read from the outputs of
its steps of kind `evaluate`: a mapping, a pydantic model or a dataclass; if it holds a
`metrics` mapping, that mapping's numbers are the metrics, else its own numeric fields
are (booleans are not numbers here). With several evaluate steps per combination, the
names are prefixed `STEP.`. The ranking metric is the one named, else the one an output
declares as its `primary_metric` (as the built-in evaluate step's report does), else the
first by name. The direction is the one given, else the output's `higher_is_better` for
its primary metric, else *minimize* when the name looks like an error or a loss (`loss`,
`error`, `err`, `mse`, `rmse`, `mae`, `mape`), else *maximize*. A combination without
the metric (it failed) ranks last.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import pydantic

from orchestrator.api import Run, _resolve, history, run_built
from orchestrator.config import Workspace
from orchestrator.errors import NotFound, OrchestratorError, ParamError
from orchestrator.model.grid import combinations, parse_grid, sample
from orchestrator.model.pipeline import Pipeline
from orchestrator.model.sweep import SweepPlan, keep, plain_value, plan_sweep, restore

_LOWER_IS_BETTER = re.compile(r"(loss|error|(^|[_.])err($|_)|mse|mae|mape)", re.IGNORECASE)


def lower_is_better(metric: str) -> bool:
    """Whether a metric's name reads as an error or a loss (see the module docstring)."""
    return bool(_LOWER_IS_BETTER.search(metric))


def build_sweep(
    pipe: Pipeline,
    grid: Any,
    base: Any = None,
    random: int | None = None,
    seed: int = 0,
) -> tuple[SweepPlan, dict[str, Any]]:
    """The merged graph of a sweep and the record its run keeps (see `record`)."""
    axes = parse_grid(grid)
    combos = combinations(axes) if random is None else sample(axes, random, seed)
    plan = plan_sweep(pipe, combos, base)
    spec = {a.path: plain_value(a.spec) for a in axes}
    record = plan.record(grid=spec, random=random, seed=seed, base=keep(dict(base or {})))
    return plan, record


def rebuild(pipe: Pipeline, record: dict[str, Any]) -> SweepPlan:
    """The graph of a recorded sweep, from the values its combinations were given."""
    combos = [restore(c["values"]) for c in record["combinations"]]
    return plan_sweep(pipe, combos, restore(record.get("base") or {}))


@dataclasses.dataclass
class Sweep:
    """A finished sweep: its run, its combinations' rows and the best one."""

    run: Run
    record: dict[str, Any]
    metric: str | None = None
    maximize: bool | None = None

    def __post_init__(self) -> None:
        self._primary: dict[str, bool | None] = {}
        self._rows = [self._row(c) for c in self.record["combinations"]]
        names = sorted({m for r in self._rows for m in r["metrics"]})
        if self.metric is None and names:
            self.metric = next(iter(self._primary), names[0])
        elif self.metric is not None and names and self.metric not in names:
            raise ParamError(f"sweep run {self.run.run_id} has no metric '{self.metric}'; "
                             f"its metrics: {', '.join(names)}")  # fmt: skip
        if self.maximize is None:
            declared = self._primary.get(self.metric or "")
            self.maximize = not lower_is_better(self.metric or "") if declared is None else declared

    def _row(self, combo: dict[str, Any]) -> dict[str, Any]:
        metrics: dict[str, float] = {}
        states = []
        steps = combo.get("evaluate") or {}
        for own, merged in steps.items():
            step = self.run.step(merged)
            states.append(step.state)
            if step.state not in ("succeeded", "cached"):
                continue
            prefix = f"{own}." if len(steps) > 1 else ""
            for i in range(len(step.outputs)):
                value = _as_dict(self.run.output(merged, i))
                metrics.update({prefix + k: v for k, v in metrics_of(value).items()})
                if isinstance(value.get("primary_metric"), str):
                    higher = value.get("higher_is_better")
                    primary = prefix + value["primary_metric"]
                    self._primary.setdefault(primary, higher if isinstance(higher, bool) else None)
        ok = all(s in ("succeeded", "cached") for s in states)
        return {
            "combination": combo["name"],
            "params": dict(combo["params"]),
            "metrics": metrics,
            "status": "succeeded" if ok else "failed",
        }

    def table(self) -> list[dict[str, Any]]:
        """Every combination (`combination`, `params`, `metrics`, `status`), best first."""
        sign = -1.0 if self.maximize else 1.0

        def rank(row: dict[str, Any]) -> tuple[int, float]:
            value = row["metrics"].get(self.metric) if self.metric else None
            if value is None or math.isnan(value):
                return (1, 0.0)
            return (0, sign * value)

        return sorted(self._rows, key=rank)

    @property
    def best(self) -> dict[str, Any] | None:
        """The best row, or None when no combination produced the metric."""
        rows = self.table()
        if not rows or self.metric is None or self.metric not in rows[0]["metrics"]:
            return None
        return rows[0]


def _as_dict(value: Any) -> dict[str, Any]:
    """An output as a mapping: a model dumped, a dataclass as a dict, else `{}`."""
    if isinstance(value, pydantic.BaseModel):
        value = value.model_dump()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return value if isinstance(value, dict) else {}


def metrics_of(value: Any) -> dict[str, float]:
    """The numbers an evaluate step's output reports (see the module docstring)."""
    value = _as_dict(value)
    inner = value.get("metrics")
    source = inner if isinstance(inner, dict) else value
    return {
        str(k): float(v)
        for k, v in source.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def sweep(
    target: Pipeline | str,
    grid: dict[str, Any],
    random: int | None = None,
    seed: int = 0,
    *,
    params: dict[str, Any] | None = None,
    executor: str = "thread",
    metric: str | None = None,
    maximize: bool | None = None,
    home: str | Path | None = None,
    db_url: str | None = None,
    artifacts: str | Path | None = None,
    progress: bool = False,
) -> Sweep:
    """Run a sweep of `target` over `grid` as one run (see the module docstring).

    `grid` maps a parameter path to its values: a list, or text as `--grid` takes it
    (`"0.1,1,10"`, `"1..8"`, `"log:0.01..10"`). `random=N` draws N combinations with
    `seed`; `params` are fixed overrides under the grid, as `orchestrator.run` takes them.
    """
    pipe, label = _resolve(target)
    plan, record = build_sweep(pipe, grid, params, random, seed)
    ws = Workspace(home, db_url, artifacts)
    try:
        trigger = {"kind": "sweep", **record}
        done = run_built(
            ws, plan.graph, label, executor=executor, progress=progress, trigger=trigger
        )
    finally:
        ws.close()
    return Sweep(done, record, metric, maximize)


def get_sweep(
    run_id: str,
    *,
    metric: str | None = None,
    maximize: bool | None = None,
    home: str | Path | None = None,
    db_url: str | None = None,
) -> Sweep:
    """The sweep an earlier run made (an id prefix is enough), its table rebuilt."""
    ws = Workspace(home, db_url)
    try:
        row = ws.store.get_run(run_id)
        return sweep_of(ws, row, metric, maximize)
    finally:
        ws.close()


def sweep_of(ws: Any, row: dict[str, Any], metric: str | None, maximize: bool | None) -> Sweep:
    """The `Sweep` of a stored run row; `NotFound` if the run was no sweep."""
    trigger = row.get("trigger") or {}
    if trigger.get("kind") != "sweep" or "combinations" not in trigger:
        raise NotFound(f"run {row['id']} is not a sweep (its trigger: {trigger.get('kind')})")
    try:
        return Sweep(history(ws, row, ws.store.step_runs(row["id"])), trigger, metric, maximize)
    except KeyError as exc:
        raise OrchestratorError(f"run {row['id']}: its sweep record lacks {exc}") from None
