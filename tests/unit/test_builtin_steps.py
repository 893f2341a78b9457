"""Unit tests of the built-in steps (called as plain functions) and the built-in pipelines.

Real scikit-learn datasets and estimators throughout. The only fake is `FakeRegistry`:
an in-memory model registry used to test the evaluate/deploy decision logic while the
real SQL-backed registry is being written concurrently. It exists only in this file and
follows the `orchestrator.execution.context.Registry` protocol; the real one is covered by the
store's own tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from orchestrator import ModelVersion, OrchestratorError, RunContext
from orchestrator.execution.context import activate, deactivate
from orchestrator.pipelines import BUILTIN
from orchestrator.steps import (
    DATASETS,
    DeployDecision,
    EvalReport,
    ValidationFailed,
    ValidationReport,
    deploy_model,
    evaluate_model,
    load_file,
    load_sklearn_dataset,
    load_sql,
    split_features,
    train_model,
    validate_frame,
)

# -- fixtures -------------------------------------------------------------------------


class ListLogger:
    """Collects (level, event, fields) like the step logger would store them."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def _add(self, level: str, event: str, **kw: Any) -> None:
        self.records.append((level, event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self._add("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._add("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._add("error", event, **kw)

    def debug(self, event: str, **kw: Any) -> None:
        self._add("debug", event, **kw)

    def events(self, level: str) -> list[str]:
        return [e for lvl, e, _ in self.records if lvl == level]


class FakeRegistry:
    """In-memory registry for these unit tests only (the real one is written concurrently)."""

    def __init__(self) -> None:
        self.versions: dict[str, list[ModelVersion]] = {}
        self.artifacts: dict[str, Any] = {}

    def production(self, name: str) -> ModelVersion | None:
        return next((v for v in self.versions.get(name, []) if v.stage == "production"), None)

    def register(
        self,
        name: str,
        *,
        artifact_hash: str,
        metrics: dict[str, float],
        run_id: str | None,
        step: str | None,
        params: dict[str, Any],
        data_hash: str | None,
        reason: str = "",
    ) -> ModelVersion:
        versions = self.versions.setdefault(name, [])
        mv = ModelVersion(
            name,
            len(versions) + 1,
            "candidate",
            artifact_hash,
            dict(metrics),
            run_id,
            step,
            dict(params),
            data_hash,
            reason,
            dt.datetime(2024, 1, 1),
        )
        versions.append(mv)
        return mv

    def promote(self, name: str, version: int, reason: str, **_who: Any) -> ModelVersion:
        versions = self.versions[name]
        for i, v in enumerate(versions):
            if v.stage == "production":
                versions[i] = dataclasses.replace(v, stage="archived")
        versions[version - 1] = dataclasses.replace(
            versions[version - 1], stage="production", reason=reason
        )
        return versions[version - 1]

    def load(self, version: ModelVersion) -> Any:
        return self.artifacts[version.artifact_hash]

    def add_production(self, name: str, model: Any, metrics: dict[str, float]) -> ModelVersion:
        self.artifacts[f"hash-{name}-champion"] = model
        mv = self.register(
            name,
            artifact_hash=f"hash-{name}-champion",
            metrics=metrics,
            run_id="r0",
            step="deploy",
            params={},
            data_hash=None,
        )
        return self.promote(name, mv.version, "seeded")


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def run(registry: FakeRegistry) -> Iterator[Any]:
    """`with run(step="deploy", input_hashes=...) as log:` activates a RunContext."""
    tokens = []

    def enter(
        step: str = "step", input_hashes: dict[str, str] | None = None, with_registry: bool = True
    ) -> ListLogger:
        log = ListLogger()
        ctx = RunContext(
            run_id="run-1",
            step=step,
            pipeline="test",
            params={"margin": 0.0},
            input_hashes=dict(input_hashes or {}),
            log=log,
            registry_factory=(lambda: registry) if with_registry else None,
        )
        tokens.append(activate(ctx))
        return log

    yield enter
    for token in reversed(tokens):
        deactivate(token)


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    return load_sklearn_dataset("iris")


@pytest.fixture(scope="module")
def iris_split(iris: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, ColumnTransformer]:
    return split_features(iris, test_size=0.25, seed=0, stratify=True)


@pytest.fixture(scope="module")
def iris_model(iris_split: tuple[pd.DataFrame, pd.DataFrame, ColumnTransformer]) -> Pipeline:
    train, _, pre = iris_split
    return train_model(train, pre, params={"max_iter": 1000})


# -- ingest ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS)
def test_load_sklearn_dataset_has_target_and_str_columns(name: str) -> None:
    df = load_sklearn_dataset(name)
    assert "target" in df.columns and len(df) > 100
    assert all(isinstance(c, str) for c in df.columns)


def test_load_sklearn_dataset_renames_target_and_rejects_unknown() -> None:
    assert "label" in load_sklearn_dataset("wine", target="label").columns
    with pytest.raises(OrchestratorError, match="unknown dataset 'irs'.*iris.*wine"):
        load_sklearn_dataset("irs")


def test_load_file_reads_csv_tsv_and_parquet(tmp_path: Path, iris: pd.DataFrame) -> None:
    iris.to_csv(tmp_path / "a.csv", index=False)
    iris.to_csv(tmp_path / "a.txt", sep="\t", index=False)
    iris.to_parquet(tmp_path / "a.parquet")
    for path, fmt in [("a.csv", "auto"), ("a.txt", "tsv"), ("a.parquet", "auto")]:
        df = load_file(tmp_path / path, format=fmt)
        pd.testing.assert_frame_equal(df.reset_index(drop=True), iris, check_dtype=False)


def test_load_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(OrchestratorError, match="ingest: file not found: .*nope.csv"):
        load_file(tmp_path / "nope.csv")
    (tmp_path / "data.xml").write_text("<rows/>")
    with pytest.raises(OrchestratorError) as err:
        load_file(tmp_path / "data.xml")
    assert str(err.value) == (
        f"ingest: cannot tell the format of {tmp_path / 'data.xml'} from its suffix '.xml'; "
        "supported suffixes: .csv, .tsv, .parquet, .pq, .xlsx, .xls, .jsonl, .ndjson; "
        "or pass format=csv|tsv|parquet|excel|jsonl"
    )
    with pytest.raises(OrchestratorError, match="unknown format 'json'"):
        load_file(tmp_path / "a.csv", format="json")


def test_load_sql_reads_sqlite_and_never_caches(tmp_path: Path, iris: pd.DataFrame) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = sqlalchemy.create_engine(url)
    iris.to_sql("iris", engine, index=False)
    engine.dispose()
    df = load_sql(url, "SELECT * FROM iris WHERE target = 2")
    assert len(df) == 50 and list(df.columns) == list(iris.columns)
    assert load_sql.cache is False and load_sql.name == "ingest_sql"
    with pytest.raises(OrchestratorError, match="query failed on sqlite.*no such table: nope"):
        load_sql(url, "SELECT * FROM nope")


def test_load_sql_masks_the_password() -> None:
    with pytest.raises(OrchestratorError) as err:
        load_sql("nosuchdb://user:s3cret@db.example/prod", "SELECT 1")
    assert "user:***@db.example" in str(err.value) and "s3cret" not in str(err.value)


# -- validate -------------------------------------------------------------------------


def test_validate_passes_and_returns_frame_unchanged(iris: pd.DataFrame) -> None:
    df, report = validate_frame(
        iris,
        columns={"target": "integer", "sepal length (cm)": "number"},
        ranges={"target": (0, 2)},
        not_null=["target"],
        min_rows=100,
    )
    assert df is iris
    assert isinstance(report, ValidationReport) and report.passed and report.rows == 150
    assert len(report.checks) == 6 and "FAIL" not in report.render()


def test_validate_failure_lists_every_check(iris: pd.DataFrame) -> None:
    with pytest.raises(ValidationFailed) as err:
        validate_frame(iris, columns={"target": "string"}, ranges={"petal length (cm)": (0, 5)})
    text = str(err.value)
    assert text.startswith("validation failed: 2 of 4 checks failed\n")
    assert "FAIL  range  petal length (cm): 42 values outside [0, 5] (min 1.0, max 6.9)" in text
    assert "FAIL  dtype  target: expected string, got int64" in text
    assert "PASS  rows " in text
    assert not err.value.report.passed and len(err.value.report.failed) == 2
    assert isinstance(err.value, OrchestratorError)
    assert str(pickle.loads(pickle.dumps(err.value))) == text


def test_validate_nulls_missing_columns_and_rows() -> None:
    df = pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "b": ["x", "y", None, "z"]})
    with pytest.raises(ValidationFailed) as err:
        validate_frame(
            df, not_null=["a", "c"], max_null_fraction=0.2, min_rows=10, columns={"b": "string"}
        )
    text = str(err.value)
    assert "FAIL  rows      (frame): 4 rows, expected at least 10" in text
    assert "FAIL  not_null  a: 1 nulls (25.0% of rows), expected none" in text
    assert "FAIL  not_null  c: missing column (have: a, b)" in text
    assert "FAIL  nulls     (frame): 2 columns over 20.0% nulls: a (25.0%), b (25.0%)" in text
    assert "PASS  dtype     b: expected string" in text
    _, ok = validate_frame(df, max_null_fraction=0.25)
    assert ok.passed


def test_validate_rejects_unknown_dtype_kind(iris: pd.DataFrame) -> None:
    with pytest.raises(OrchestratorError, match="column 'target': unknown dtype 'numbr'"):
        validate_frame(iris, columns={"target": "numbr"})
    _, report = validate_frame(iris, columns={"target": "int64"})
    assert report.passed


def test_validate_logs_only_inside_a_run(iris: pd.DataFrame, run: Any) -> None:
    validate_frame(iris)  # plain call: no context, no logging, no error
    log = run(step="validate")
    validate_frame(iris)
    assert log.events("info") == ["validation passed: 2 checks on 150 rows"]


# -- features -------------------------------------------------------------------------


def test_split_scaler_is_fit_on_train_only(iris: pd.DataFrame) -> None:
    train, test, pre = split_features(iris, test_size=0.3, seed=1)
    assert len(train) == 105 and len(test) == 45
    assert "target" in train.columns and "target" in test.columns
    assert not set(train.index) & set(test.index)
    features = [c for c in iris.columns if c != "target"]
    scaler = pre.named_transformers_["numeric"]
    np.testing.assert_allclose(scaler.mean_, train[features].mean().to_numpy())
    assert not np.allclose(scaler.mean_, iris[features].mean().to_numpy())


def test_split_is_seeded_and_stratified(iris: pd.DataFrame) -> None:
    a, _, _ = split_features(iris, seed=3, stratify=True)
    b, _, _ = split_features(iris, seed=3, stratify=True)
    c, _, _ = split_features(iris, seed=4, stratify=True)
    assert list(a.index) == list(b.index) and list(a.index) != list(c.index)
    assert a["target"].value_counts().tolist() == [40, 40, 40]


def test_split_one_hot_encodes_text_columns_and_can_skip_scaling() -> None:
    df = pd.DataFrame({"x": np.arange(20.0), "color": ["red", "blue"] * 10, "target": [0, 1] * 10})
    train, _, pre = split_features(df, scale=False, seed=0)
    out = pre.transform(train.drop(columns=["target"]))
    assert out.shape == (16, 3)
    np.testing.assert_array_equal(out[:, 0], train["x"].to_numpy())  # numeric passed through
    assert sorted(pre.named_transformers_["categorical"].categories_[0]) == ["blue", "red"]


def test_split_missing_target_names_the_columns(iris: pd.DataFrame) -> None:
    with pytest.raises(OrchestratorError, match="target column 'label' not found.*petal length"):
        split_features(iris, target="label")


# -- train ----------------------------------------------------------------------------


def test_train_fits_a_pipeline(iris_split: Any, iris_model: Pipeline) -> None:
    train, test, _ = iris_split
    assert [name for name, _ in iris_model.steps] == ["features", "model"]
    assert iris_model.named_steps["model"].random_state == 0
    assert iris_model.score(test.drop(columns=["target"]), test["target"]) > 0.8


def test_train_is_deterministic_and_seeded(iris_split: Any) -> None:
    train, test, pre = iris_split
    rf = "sklearn.ensemble.RandomForestClassifier"
    a = train_model(train, pre, estimator=rf, params={"n_estimators": 10}, seed=7)
    b = train_model(train, pre, estimator=rf, params={"n_estimators": 10}, seed=7)
    x = test.drop(columns=["target"])
    assert a.named_steps["model"].random_state == 7
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))


@pytest.mark.parametrize(
    ("estimator", "params", "message"),
    [
        (
            "sklearn.linear_model.LogisticRegresion",
            {},
            "has no 'LogisticRegresion' \\(did you mean 'LogisticRegression'\\?\\)",
        ),
        ("sklearnx.linear.Model", {}, "cannot import estimator 'sklearnx.linear.Model'"),
        ("collections.OrderedDict", {}, "'collections.OrderedDict' is not a scikit-learn"),
        ("LogisticRegression", {}, "must be a dotted path"),
        (
            "sklearn.linear_model.LogisticRegression",
            {"CC": 1.0},
            "LogisticRegression has no parameter 'CC' \\(did you mean 'C'\\?\\)",
        ),
        (
            "sklearn.linear_model.LogisticRegression",
            {"C": -1.0},
            "invalid parameter for sklearn.linear_model.LogisticRegression: The 'C' parameter",
        ),
    ],
)
def test_train_errors_name_the_estimator(
    iris_split: Any, estimator: str, params: dict[str, Any], message: str
) -> None:
    train, _, pre = iris_split
    with pytest.raises(OrchestratorError, match=message):
        train_model(train, pre, estimator=estimator, params=params)


def test_train_does_not_mutate_the_preprocessor(iris_split: Any) -> None:
    train, _, pre = iris_split
    mean = pre.named_transformers_["numeric"].mean_.copy()
    model = train_model(train, pre)
    assert model.named_steps["features"] is not pre
    np.testing.assert_array_equal(pre.named_transformers_["numeric"].mean_, mean)


# -- evaluate -------------------------------------------------------------------------


def test_evaluate_classification_metrics(iris_split: Any, iris_model: Pipeline) -> None:
    report = evaluate_model(iris_model, iris_split[1])
    assert set(report.metrics) == {"accuracy", "f1_macro", "precision_macro", "recall_macro"}
    assert report.metrics["accuracy"] > 0.8 and report.primary_metric == "accuracy"
    assert report.higher_is_better and report.rows == 38
    assert report.champion_version is None and report.champion_metrics is None
    assert EvalReport.model_validate_json(report.model_dump_json()) == report


def test_evaluate_regression_metrics() -> None:
    train, test, pre = split_features(load_sklearn_dataset("diabetes"), seed=0)
    model = train_model(train, pre, estimator="sklearn.linear_model.Ridge", params={"alpha": 1})
    report = evaluate_model(model, test, task="regression")
    assert set(report.metrics) == {"r2", "rmse", "mae"} and report.primary_metric == "r2"
    assert 0.3 < report.metrics["r2"] < 1 and report.metrics["rmse"] > report.metrics["mae"] > 0


def test_evaluate_unknown_task(iris_split: Any, iris_model: Pipeline) -> None:
    with pytest.raises(OrchestratorError, match="unknown task 'clustering'.*classification"):
        evaluate_model(iris_model, iris_split[1], task="clustering")


def test_evaluate_scores_the_champion_on_the_same_rows(
    iris_split: Any, iris_model: Pipeline, registry: FakeRegistry, run: Any
) -> None:
    train, test, pre = iris_split
    dummy = train_model(train, pre, estimator="sklearn.dummy.DummyClassifier")
    champ = registry.add_production("iris", dummy, {"accuracy": 0.99})
    run(step="evaluate")
    report = evaluate_model(iris_model, test, model_name="iris")
    assert report.champion_version == champ.version
    assert report.champion_metrics is not None
    assert report.champion_metrics["accuracy"] == pytest.approx(1 / 3, abs=0.05)


def test_evaluate_survives_a_broken_champion(
    iris_split: Any, iris_model: Pipeline, registry: FakeRegistry, run: Any
) -> None:
    registry.add_production("iris", object(), {"accuracy": 0.5})
    log = run(step="evaluate")
    report = evaluate_model(iris_model, iris_split[1], model_name="iris")
    assert report.champion_version == 1 and report.champion_metrics is None
    assert log.events("warning") == ["champion could not be evaluated"]


def test_evaluate_without_registry_skips_comparison(
    iris_split: Any, iris_model: Pipeline, run: Any
) -> None:
    log = run(step="evaluate", with_registry=False)
    report = evaluate_model(iris_model, iris_split[1])
    assert report.champion_version is None
    assert log.events("warning") == ["no champion comparison: registry unavailable"]


# -- deploy ---------------------------------------------------------------------------


def _report(
    accuracy: float, champion: int | None = None, champion_accuracy: float | None = None
) -> EvalReport:
    return EvalReport(
        task="classification",
        metrics={"accuracy": accuracy},
        primary_metric="accuracy",
        higher_is_better=True,
        champion_version=champion,
        rows=30,
        champion_metrics=None if champion_accuracy is None else {"accuracy": champion_accuracy},
    )


HASHES = {"model": "hash-new", "report": "hash-report", "data": "hash-data"}


def test_deploy_needs_a_run(iris_model: Pipeline, iris: pd.DataFrame) -> None:
    with pytest.raises(OrchestratorError, match=r"needs a run context \(run it in a pipeline\)"):
        deploy_model(iris_model, _report(0.9), iris)
    assert deploy_model.cache is True and deploy_model.kind == "deploy"


def test_deploy_promotes_the_first_model_with_lineage(
    iris_model: Pipeline, iris: pd.DataFrame, registry: FakeRegistry, run: Any
) -> None:
    log = run(step="deploy", input_hashes=HASHES)
    decision = deploy_model(iris_model, _report(0.9), iris, model_name="iris")
    assert decision == DeployDecision(
        model_name="iris",
        version=1,
        promoted=True,
        stage="production",
        reason="no production model yet",
    )
    mv = registry.production("iris")
    assert mv is not None and mv.artifact_hash == "hash-new" and mv.data_hash == "hash-data"
    assert mv.run_id == "run-1" and mv.step == "deploy" and mv.metrics == {"accuracy": 0.9}
    assert log.events("info") == ["deploy decision"]


def test_deploy_keeps_the_champion_when_not_better(
    iris_model: Pipeline, iris: pd.DataFrame, registry: FakeRegistry, run: Any
) -> None:
    registry.add_production("iris", iris_model, {"accuracy": 0.9667})
    run(step="deploy", input_hashes=HASHES)
    decision = deploy_model(iris_model, _report(0.9333), iris, model_name="iris")
    assert not decision.promoted and decision.version == 2 and decision.stage == "candidate"
    assert decision.champion_version == 1
    assert decision.reason == (
        "kept champion v1: accuracy 0.9333 does not beat 0.9667 by margin 0.0"
    )
    assert registry.production("iris").version == 1  # type: ignore[union-attr]


def test_deploy_promotes_when_better_by_more_than_margin(
    iris_model: Pipeline, iris: pd.DataFrame, registry: FakeRegistry, run: Any
) -> None:
    registry.add_production("iris", iris_model, {"accuracy": 0.90})
    run(step="deploy", input_hashes=HASHES)
    kept = deploy_model(iris_model, _report(0.92), iris, model_name="iris", margin=0.05)
    assert not kept.promoted and "by margin 0.05" in kept.reason
    won = deploy_model(iris_model, _report(0.97), iris, model_name="iris", margin=0.05)
    assert won.promoted and won.version == 3 and won.stage == "production"
    assert "beats champion v1's 0.9000" in won.reason
    assert [v.stage for v in registry.versions["iris"]] == ["archived", "candidate", "production"]


def test_deploy_prefers_champion_metrics_measured_on_this_test_set(
    iris_model: Pipeline, iris: pd.DataFrame, registry: FakeRegistry, run: Any
) -> None:
    registry.add_production("iris", iris_model, {"accuracy": 0.99})  # stored, other data
    run(step="deploy", input_hashes=HASHES)
    decision = deploy_model(
        iris_model, _report(0.95, champion=1, champion_accuracy=0.90), iris, model_name="iris"
    )
    assert decision.promoted and "beats champion v1's 0.9000" in decision.reason
    run(step="deploy", input_hashes={**HASHES, "model": "hash-newer"})
    stale = _report(0.95, champion=1, champion_accuracy=0.10)  # evaluate saw v1, not v2
    decision = deploy_model(iris_model, stale, iris, model_name="iris")
    assert not decision.promoted and decision.champion_version == 2
    assert decision.reason == "kept champion v2: accuracy 0.9500 does not beat 0.9500 by margin 0.0"


def test_deploy_does_not_reregister_the_production_model(
    iris_model: Pipeline, iris: pd.DataFrame, registry: FakeRegistry, run: Any
) -> None:
    run(step="deploy", input_hashes=HASHES)
    deploy_model(iris_model, _report(0.9), iris, model_name="iris")
    again = deploy_model(iris_model, _report(0.9), iris, model_name="iris")
    assert not again.promoted and again.version == 1 and again.stage == "production"
    assert again.reason == "this model is already production v1"
    assert len(registry.versions["iris"]) == 1


# -- pipelines ------------------------------------------------------------------------

ORDER = ["ingest", "validate", "features", "train", "evaluate", "deploy"]


@pytest.mark.parametrize("name", ["classification", "regression"])
def test_builtin_pipelines_build(name: str) -> None:
    graph = BUILTIN[name].build()
    assert graph.order == ORDER
    assert set(graph.parents("deploy")) == {"validate", "train", "evaluate"}
    kinds = [graph.nodes[n].step.kind for n in graph.order]
    assert kinds == ["ingest", "validate", "feature", "train", "evaluate", "deploy"]


def test_pipeline_parameters_reach_the_steps() -> None:
    graph = BUILTIN["classification"].build({"C": 0.5, "seed": 3, "model_name": "m"})
    assert graph.nodes["train"].params()["params"] == {"C": 0.5, "max_iter": 1000}
    assert graph.nodes["features"].params()["seed"] == 3
    assert graph.nodes["deploy"].params()["model_name"] == "m"
    regression = BUILTIN["regression"].build({"alpha": 2.0})
    assert regression.nodes["train"].params()["params"] == {"alpha": 2.0}


def _run_in_order(graph: Any, stop_before: str) -> dict[str, Any]:
    """Call each node's function in plan order on its bindings, as an engine would."""
    outputs: dict[str, Any] = {}
    for node_name in graph.order:
        if node_name == stop_before:
            break
        node = graph.nodes[node_name]
        kwargs = dict(node.params())
        for arg, ref in node.inputs().items():
            value = outputs[ref.node]
            kwargs[arg] = value[ref.index] if isinstance(value, tuple) else value
        outputs[node_name] = node.step.fn(**kwargs)
    return outputs


@pytest.mark.parametrize("name", ["classification", "regression"])
def test_builtin_pipeline_steps_run_as_functions(name: str) -> None:
    outputs = _run_in_order(BUILTIN[name].build(), stop_before="deploy")  # deploy needs a run
    report = outputs["evaluate"]
    assert report.task == name and report.metrics[report.primary_metric] > 0.3


# -- the README's table of built-in steps ---------------------------------------------


def _readme_step_rows() -> dict[str, str]:
    """`{function: its table row, quotes normalised}` from the README's built-in steps."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Built-in steps and pipelines", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 2:
            rows[cells[1].strip("`")] = line.replace('"', "'").replace("\\|", "|")
    return rows


def test_readme_lists_every_builtin_step_with_its_signature() -> None:
    import orchestrator.steps as steps
    from orchestrator import Step

    builtin = {
        name: obj
        for name in dir(steps)
        if isinstance(obj := getattr(steps, name), Step)
        and obj.__module__.startswith("orchestrator.steps")
    }
    rows = _readme_step_rows()
    assert sorted(rows) == sorted(builtin)
    for name, step in builtin.items():
        row = rows[name]
        assert row.startswith(f"| `{step.name}` |"), row
        for arg in step.arguments.values():
            if arg.required:
                assert f"`{arg.name}" in row, (name, arg.name)
            else:
                pattern = rf"`{arg.name}(: [^`]*)? ?= ?{re.escape(repr(arg.default))}"
                assert re.search(pattern, row), (name, arg.name, arg.default)
