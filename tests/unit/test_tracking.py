"""What a step may track, checked where it is logged: one line naming the step and the
name for a bad value; returned metrics; the plain JSON that crosses every executor."""

from __future__ import annotations

import math

import pytest

from orchestrator import Metrics, ParamError
from orchestrator.cache.hashing import canonical
from orchestrator.compare import lower_is_better
from orchestrator.experiments import Filter
from orchestrator.tracking import Tracked, Tracker


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.log_metric("r2", "high"), "step 'fit': metric 'r2' must be a number, got str"),
        (lambda t: t.log_metric("r2", True), "step 'fit': metric 'r2' must be a number, got bool"),
        (lambda t: t.log_metric("r2", math.nan), "step 'fit': metric 'r2' must be finite, got nan"),
        (lambda t: t.log_metric("", 1.0), "step 'fit': log_metric needs a non-empty name, got ''"),
        (
            lambda t: t.log_metric("loss", 1.0, step=1.5),
            "step 'fit': metric 'loss' step must be an integer, got 1.5",
        ),
        (
            lambda t: t.log_params(when=object()),
            "step 'fit': parameter 'when' cannot be recorded:",
        ),
    ],
)
def test_bad_tracking_input_is_one_line_naming_the_step(call: object, message: str) -> None:
    tracker = Tracker("fit", canonical=canonical)
    with pytest.raises(ParamError) as err:
        call(tracker)  # type: ignore[operator]
    assert str(err.value).startswith(message)
    assert not tracker.tracked  # nothing half-recorded


def test_returned_metrics_are_recorded_and_stored_as_plain_dicts() -> None:
    tracker = Tracker("evaluate")
    values = tracker.returned([Metrics(r2=0.5), {"rows": 3}, {"name": "x"}], kind="evaluate")
    assert values == [{"r2": 0.5}, {"rows": 3}, {"name": "x"}]
    assert type(values[0]) is dict
    assert [(m["name"], m["value"]) for m in tracker.tracked.metrics] == [("r2", 0.5), ("rows", 3)]
    other = Tracker("train")
    other.returned([{"rows": 3}], kind="train")  # only evaluate steps' plain dicts count
    assert not other.tracked


def test_tracked_round_trips_through_json() -> None:
    tracker = Tracker("fit", canonical=canonical)
    tracker.log_metric("loss", 0.25, step=3)
    tracker.log_params({"layers": (8, 4)}, tag="a")
    back = Tracked.from_json(tracker.tracked.to_json())
    assert back == tracker.tracked
    assert back.metrics == [{"name": "loss", "value": 0.25, "step": 3}]
    assert back.params == {"layers": [8, 4], "tag": "a"}


def test_filters_parse_and_match() -> None:
    row = {"metrics": {"r2": 0.85}, "all_params": {"C": 1.0, "solver": "lbfgs"}}
    assert Filter.parse("r2>0.8").matches(row) and not Filter.parse("r2>=0.9").matches(row)
    assert Filter.parse("C=1").matches(row) and Filter.parse("C == 1.0").matches(row)
    assert Filter.parse("solver=lbfgs").matches(row) and Filter.parse("solver!=adam").matches(row)
    assert not Filter.parse("missing=1").matches(row)
    assert lower_is_better("val_loss") and lower_is_better("rmse") and not lower_is_better("r2")
