"""Unit tests of drift detection: `drift_report` and the `detect_drift` step as a function.

Real data throughout: scikit-learn's iris and wine, split into reference and batch halves
by a seeded shuffle. Shifts are made by hand on the batch so the expected answer is known.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris, load_wine

from orchestrator import OrchestratorError, RunContext, pipeline, step
from orchestrator.execution.context import activate, deactivate
from orchestrator.steps import DriftReport, detect_drift, drift_report
from orchestrator.steps.drift import categorical_psi, numeric_psi

SHIFTED = "petal length (cm)"


def halves(frame: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first and second half of `frame` after a seeded shuffle."""
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    half = len(shuffled) // 2
    return shuffled.iloc[:half].reset_index(drop=True), shuffled.iloc[half:].reset_index(drop=True)


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    return load_iris(as_frame=True).frame


@pytest.fixture
def split(iris: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return halves(iris)


def shifted(batch: pd.DataFrame, column: str, sds: float = 2.0) -> pd.DataFrame:
    out = batch.copy()
    out[column] = out[column] + sds * batch[column].std()
    return out


def with_colour(frame: pd.DataFrame, weights: list[float], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colours = rng.choice(["red", "green", "blue"], size=len(frame), p=weights)
    return frame.assign(colour=pd.Categorical(colours))


# -- no drift -------------------------------------------------------------------------


def test_unshifted_halves_do_not_drift(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, batch = split
    report = drift_report(reference, batch)
    assert not report.drifted, report.render()
    assert report.drifted_features == []
    assert [f.feature for f in report.features] == [c for c in reference.columns if c != "target"]
    assert (report.reference_rows, report.batch_rows) == (75, 75)
    assert report.thresholds == {"psi": 0.2, "ks_pvalue": 0.01}
    assert all(f.kind == "numeric" and f.ks_pvalue is not None for f in report.features)


@pytest.mark.parametrize("loader", [load_iris, load_wine], ids=["iris", "wine"])
def test_false_alarms_are_rare_on_unshifted_halves(loader: object) -> None:
    """Across 20 seeded splits of one data set, few features are flagged (per-feature rate)."""
    frame = loader(as_frame=True).frame  # type: ignore[operator]
    flagged = checked = 0
    for seed in range(20):
        report = drift_report(*halves(frame, seed))
        flagged += len(report.drifted_features)
        checked += len(report.features)
    assert flagged / checked < 0.08, f"{flagged} of {checked} feature checks flagged"


# -- numeric drift --------------------------------------------------------------------


def test_one_shifted_feature_is_the_only_one_flagged(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, batch = split
    report = drift_report(reference, shifted(batch, SHIFTED))
    assert report.drifted and report.drifted_features == [SHIFTED]
    moved = next(f for f in report.features if f.feature == SHIFTED)
    assert moved.psi > 0.2 and math.isfinite(moved.psi)
    assert moved.ks_pvalue is not None and moved.ks_pvalue < 0.01
    assert moved.ks_statistic is not None and moved.ks_statistic > 0.5
    assert "PSI" in moved.reason and "> 0.2" in moved.reason and "< 0.01" in moved.reason


def test_either_signal_flags_a_numeric_feature(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, batch = split
    moved = shifted(batch, SHIFTED)
    by_ks = drift_report(reference, moved, features=[SHIFTED], psi_threshold=1e9)
    by_psi = drift_report(reference, moved, features=[SHIFTED], ks_pvalue_threshold=0.0)
    neither = drift_report(
        reference, moved, features=[SHIFTED], psi_threshold=1e9, ks_pvalue_threshold=0.0
    )
    assert by_ks.drifted and by_psi.drifted and not neither.drifted


def test_psi_of_identical_samples_is_about_zero(iris: pd.DataFrame) -> None:
    values = iris[SHIFTED].to_numpy()
    assert numeric_psi(values, values) < 0.01
    assert numeric_psi(values, values.copy(), bins=10) == pytest.approx(0.0, abs=1e-12)
    assert categorical_psi(pd.Series(list("aabbc")), pd.Series(list("aabbc"))) < 0.01


def test_psi_is_finite_when_a_bin_is_empty(iris: pd.DataFrame) -> None:
    reference = iris[SHIFTED].to_numpy()
    everything_high = np.full(100, reference.max() + 10.0)  # all in the top bin
    value = numeric_psi(reference, everything_high)
    assert math.isfinite(value) and value > 0.2
    assert math.isfinite(categorical_psi(pd.Series(list("aab")), pd.Series(list("ccd"))))


def test_nans_are_dropped_and_counted(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, batch = split
    batch = batch.copy()
    batch.loc[:4, "sepal width (cm)"] = np.nan
    report = drift_report(reference, batch)
    width = next(f for f in report.features if f.feature == "sepal width (cm)")
    assert math.isfinite(width.psi)
    assert "dropped NaN: 0 reference, 5 batch" in width.reason


# -- categorical drift ----------------------------------------------------------------


def test_changed_category_mix_is_flagged(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, batch = split
    reference = with_colour(reference, [0.6, 0.3, 0.1], seed=1)
    changed = with_colour(batch, [0.1, 0.3, 0.6], seed=2)
    report = drift_report(reference, changed, features=["colour"])
    (colour,) = report.features
    assert colour.kind == "categorical" and colour.drifted and colour.psi > 0.2
    assert colour.ks_statistic is None and colour.ks_pvalue is None


def test_unchanged_category_mix_is_not_flagged(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, batch = split
    reference = with_colour(reference, [0.6, 0.3, 0.1], seed=1)
    same = with_colour(batch, [0.6, 0.3, 0.1], seed=2)
    report = drift_report(reference, same)
    assert not report.drifted, report.render()
    assert "colour" in [f.feature for f in report.features]


def test_a_new_category_is_named_in_the_reason() -> None:
    reference = pd.DataFrame({"city": ["Oslo"] * 50 + ["Lyon"] * 50})
    batch = pd.DataFrame({"city": ["Oslo"] * 50 + ["Kyiv"] * 50})
    (city,) = drift_report(reference, batch).features
    assert city.drifted and "only in batch (Kyiv)" in city.reason


def test_bool_features_are_categorical() -> None:
    reference = pd.DataFrame({"flag": [True, False] * 50})
    batch = pd.DataFrame({"flag": [True] * 90 + [False] * 10})
    (flag,) = drift_report(reference, batch).features
    assert flag.kind == "categorical" and flag.drifted


# -- errors ---------------------------------------------------------------------------


def test_missing_feature_in_batch_names_it_and_the_batch_columns(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, batch = split
    with pytest.raises(OrchestratorError) as info:
        drift_report(reference, batch.drop(columns=[SHIFTED]))
    message = str(info.value)
    assert f"feature '{SHIFTED}' is missing from the batch" in message
    assert "batch columns: petal width (cm), sepal length (cm)" in message


def test_empty_batch_is_a_clear_error(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, batch = split
    with pytest.raises(OrchestratorError, match="the batch frame is empty"):
        drift_report(reference, batch.iloc[:0])


def test_all_nan_feature_is_a_clear_error(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, batch = split
    with pytest.raises(OrchestratorError, match="'sepal width \\(cm\\)' has no non-null values"):
        drift_report(reference, batch.assign(**{"sepal width (cm)": np.nan}))


def test_unsupported_dtype_is_a_clear_error() -> None:
    when = pd.DataFrame({"when": pd.date_range("2026-01-01", periods=10)})
    with pytest.raises(OrchestratorError, match="dtype datetime64"):
        drift_report(when, when)


# -- report and step ------------------------------------------------------------------


def test_render_has_a_drift_line_per_drifted_feature(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, batch = split
    report = drift_report(reference, shifted(batch, SHIFTED))
    lines = report.render().splitlines()
    assert len(lines) == 4
    assert [line for line in lines if line.startswith("DRIFT  ")] == [
        line for line in lines if SHIFTED in line
    ]
    assert lines[-1].startswith("ok     petal width (cm): PSI ")
    assert report.summary().startswith(f"drift in 1 of 4 features: {SHIFTED}")
    assert drift_report(reference, batch).summary().startswith("no drift in 4 features")


def test_report_is_deterministic_and_round_trips(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, batch = split
    report = drift_report(reference, shifted(batch, SHIFTED))
    assert drift_report(reference, shifted(batch, SHIFTED)) == report
    assert DriftReport.model_validate_json(report.model_dump_json()) == report


def test_step_called_as_a_function_returns_the_same_report(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, batch = split
    moved = shifted(batch, SHIFTED)
    assert detect_drift.name == "detect_drift" and detect_drift.kind == "validate"
    assert detect_drift(reference, moved) == drift_report(reference, moved)
    assert detect_drift(reference, moved, bins=5, psi_threshold=0.5) == drift_report(
        reference, moved, bins=5, psi_threshold=0.5
    )


class Events:
    """A step logger that keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.records.append(("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self.records.append(("warning", event, fields))

    def error(self, event: str, **fields: Any) -> None:
        self.records.append(("error", event, fields))

    def debug(self, event: str, **fields: Any) -> None:
        self.records.append(("debug", event, fields))


def test_step_logs_the_summary_inside_a_run(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, batch = split
    log = Events()
    ctx = RunContext(
        run_id="run-1", step="detect_drift", pipeline="p", params={}, input_hashes={}, log=log
    )
    token = activate(ctx)
    try:
        report = detect_drift(reference, shifted(batch, SHIFTED))
    finally:
        deactivate(token)
    assert report.drifted  # drift is reported, never raised
    assert log.records == [("info", report.summary(), {"drifted": [SHIFTED]})]


def test_step_parameters_validate_in_a_pipeline() -> None:
    @step
    def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
        return halves(load_iris(as_frame=True).frame)

    @pipeline
    def monitor() -> None:
        reference, batch = frames()
        detect_drift(reference, batch, exclude=["target"], psi_threshold=0.25, bins=8)

    node = monitor.build().nodes["detect_drift"]
    assert node.bindings["exclude"] == ["target"] and node.bindings["bins"] == 8
