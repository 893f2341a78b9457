"""The closed retraining loop on scikit-learn's breast-cancer data.

    orch run loop.py:retrain                    # train the champion, promote it
    orch serve cancer-classifier --request-log requests.jsonl &
    orch daemon loop.py &                       # monitors, triggers and the nightly retrain
    python simulate.py labelled labelled/batch-1.csv --shift 3   # labels arrive
    python simulate.py requests http://127.0.0.1:8000 --shift 3  # the world drifts

What happens: the server logs every request; the drift monitor compares the logged
features with the data the production model was trained on; the shifted feature drifts,
so the monitor emits a `drift` event; the `retrain-on-drift` trigger starts `retrain`,
which trains a challenger on the labelled data in `labelled/`; the deploy step promotes
it only if it beats the champion on the same test rows by more than `margin`; the server
picks the new version up without a restart. Labelled feedback in `feedback/` is scored
by the metric monitor, which emits `metric_drop` when accuracy falls below 0.9.
"""

from __future__ import annotations

import glob
from pathlib import Path

import pandas as pd

from orchestrator import DriftMonitor, EventTrigger, MetricMonitor, Schedule, pipeline, step
from orchestrator.steps import (
    deploy_model,
    evaluate_model,
    load_sklearn_dataset,
    split_features,
    train_model,
    validate_frame,
)

HERE = Path(__file__).resolve().parent
MODEL = "cancer-classifier"


@step(kind="ingest", cache=False)  # reads a folder that changes; equal frames still hit
def labelled_data(base: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """The newest regime: every labelled file matching `pattern`, or `base` if none yet."""
    files = sorted(glob.glob(pattern))
    if not files:
        return base
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


@pipeline
def retrain(
    labelled: str = str(HERE / "labelled" / "*.csv"), seed: int = 0, margin: float = 0.02
) -> None:
    """Train on the labelled data (the original data set until labels arrive); deploy."""
    base = load_sklearn_dataset(dataset="breast_cancer")
    raw = labelled_data(base, pattern=labelled)
    data, _checks = validate_frame(
        raw, columns={"target": "integer"}, not_null=["target"], min_rows=100
    )
    train_df, test_df, pre = split_features(data, test_size=0.3, seed=seed, stratify=True)
    model = train_model(train_df, pre, params={"C": 1.0, "max_iter": 2000}, seed=seed)
    report = evaluate_model(model, test_df, task="classification", model_name=MODEL)
    deploy_model(model, report, data, model_name=MODEL, margin=margin)


drift = DriftMonitor(
    name="requests-drift",
    model=MODEL,
    requests=str(HERE / "requests.jsonl"),  # orch serve ... --request-log requests.jsonl
    min_rows=100,
)
metric = MetricMonitor(
    name="feedback-accuracy",
    model=MODEL,
    feedback=str(HERE / "feedback" / "*.csv"),
    metric="accuracy",
    threshold=0.9,
)
retrain_on_drift = EventTrigger(
    name="retrain-on-drift", event="drift", pipeline="retrain", cooldown=60
)
retrain_on_metric = EventTrigger(
    name="retrain-on-metric", event="metric_drop", pipeline="retrain", cooldown=60
)
retrain_on_request = EventTrigger(name="retrain-on-request", event="retrain", pipeline="retrain")
nightly = Schedule(name="nightly-retrain", pipeline="retrain", cron="0 3 * * *")
