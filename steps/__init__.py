"""Built-in steps for tabular ML pipelines, written against the public API only.

Step (node name)   function                kind
-----------------  ----------------------  --------
ingest             `load_sklearn_dataset`  ingest
ingest_file        `load_file`             ingest (CSV, TSV, Parquet, Excel, JSON lines)
ingest_sql         `load_sql`              ingest (never cached)
validate           `validate_frame`        validate
features           `split_features`        feature
train              `train_model`           train
evaluate           `evaluate_model`        evaluate (any fitted scikit-learn estimator)
deploy             `deploy_model`          deploy (needs a run; an EvalReport or a metrics dict)
detect_drift       `detect_drift`          validate

Each is a plain function when called outside a pipeline, so it can be unit-tested. The
README's "Built-in steps and pipelines" table lists every signature.
"""

from .deploy import DeployDecision, deploy_model
from .drift import DriftReport, FeatureDrift, detect_drift, drift_report  # noqa: F401
from .evaluate import EvalReport, evaluate_model
from .feature import split_features
from .ingest import DATASETS, load_file, load_sklearn_dataset, load_sql
from .train import train_model
from .validate import Check, ValidationFailed, ValidationReport, validate_frame

__all__ = [
    "DATASETS",
    "Check",
    "DeployDecision",
    "EvalReport",
    "ValidationFailed",
    "ValidationReport",
    "deploy_model",
    "evaluate_model",
    "load_file",
    "load_sklearn_dataset",
    "load_sql",
    "split_features",
    "train_model",
    "validate_frame",
]
