"""Conditions at run time: read a ready step's condition, say whether it is skipped. Pure.

When a step with a condition (`model.conditions`) is ready, its condition's source has
finished: `verdict` reads the value (the run's in-process `memo` by artifact hash, else
`load` from the artifact store: a cached upstream and a process, Docker or Dask run
read it there), applies the predicate if any, and returns None (the step runs) or the
reason it is skipped. The rule for what follows, which the engine loop applies:

* a step whose condition is false is `skipped`, reason "condition 'evaluate.passed' is
  false" (with the value a predicate read, in the details);
* every descendant of it in the run is `skipped` too, reason "upstream step 'deploy'
  was skipped by its condition": each needs, through its inputs or its own condition,
  a value the skipped step never made;
* a condition-skip is no failure: a run whose steps all finished or were skipped by a
  condition is SUCCEEDED (`by_condition` marks such a reason).

A condition that cannot be read (its predicate raises, or gives no bool) fails its step
with one `ConditionFailed` line naming the step. Nothing is remembered across runs: a
re-run or a resume decides again from the (cached) upstream value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.artifacts.store import ArtifactRef
from orchestrator.errors import OrchestratorError
from orchestrator.model.conditions import Condition
from orchestrator.model.step import Node

SKIPPED_BY = "condition"


class ConditionFailed(OrchestratorError):
    """A step's condition could not be decided; the step fails with this line."""


def skip_reason(summary: str, details: list[str] | None = None) -> dict[str, Any]:
    reason: dict[str, Any] = {"cache": "skipped", "summary": summary, "skipped_by": SKIPPED_BY}
    if details:
        reason["details"] = details
    return reason


def downstream(name: str) -> dict[str, Any]:
    """The reason of a descendant of `name`, which its condition skipped."""
    return skip_reason(f"upstream step '{name}' was skipped by its condition")


def by_condition(reason: dict[str, Any] | None) -> bool:
    """Whether a step's reason says a condition skipped it (no failure of the run)."""
    return bool(reason) and reason.get("skipped_by") == SKIPPED_BY  # type: ignore[union-attr]


def verdict(
    node: Node,
    outputs: dict[str, list[ArtifactRef]],
    memo: dict[str, Any],
    load: Callable[[ArtifactRef], Any],
) -> dict[str, Any] | None:
    """None when `node` runs (no condition, or it holds); else the reason it is skipped."""
    cond = node.condition
    if not isinstance(cond, Condition):
        return None
    ref = outputs[cond.source.node][cond.source.index]
    try:
        value = memo[ref.hash] if ref.hash in memo else load(ref)
    except OrchestratorError as exc:
        raise ConditionFailed(
            f"step '{node.name}': cannot read condition {cond.text}: {exc}"
        ) from None
    if _holds(node.name, cond, value):
        return None
    summary = f"condition {cond.text} is false"
    if cond.predicate is None:
        return skip_reason(summary)
    return skip_reason(summary, [summary, f"value of '{cond.source.label}': {_short(value)}"])


def _holds(name: str, cond: Condition, value: Any) -> bool:
    got = value
    if cond.predicate is not None:
        try:
            got = cond.predicate(value)
        except Exception as exc:  # user code
            raise ConditionFailed(
                f"step '{name}': condition {cond.text} raised {type(exc).__name__}: {exc}"
            ) from None
    if isinstance(got, bool) or _is_numpy_bool(got):
        return bool(got)
    raise ConditionFailed(
        f"step '{name}': condition {cond.text} gave {_short(got)} ({type(got).__name__}), "
        "not a bool"
    )


def _is_numpy_bool(value: Any) -> bool:
    t = type(value)
    return t.__module__ == "numpy" and t.__name__ in ("bool", "bool_")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
