"""Built-in steps import their libraries inside their bodies; the cache still sees them.

Building a built-in pipeline imports neither pandas nor scikit-learn nor scipy (their
hints are `LazyHint`s that print like the classes), and a body import still enters the
code fingerprint as `package sklearn` with the installed version, so a different
scikit-learn changes the cache key of every step that imports it.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from orchestrator import Pipeline, pipeline, step
from orchestrator.cache.fingerprint import clear_fingerprints
from orchestrator.cache.keys import KeyMaker
from orchestrator.cache.packages import package_version
from orchestrator.model.step import Node
from orchestrator.model.types import type_name
from orchestrator.pipelines import classification
from orchestrator.steps import evaluate_model, split_features, train_model

HEAVY = ("sklearn", "scipy", "pandas")


@pytest.fixture
def fresh_versions() -> Iterator[None]:
    """Forget the package versions and fingerprints read so far, before and after."""
    package_version.cache_clear()
    clear_fingerprints()
    yield
    package_version.cache_clear()
    clear_fingerprints()


def _key(step_obj: Any) -> Any:
    node = Node(step_obj.name, step_obj, {})
    return KeyMaker().make(node, {"model": "h1", "test": "h2", "train": "h3"})


@pytest.mark.parametrize("built_in", [train_model, evaluate_model], ids=lambda s: s.name)
def test_a_body_import_of_sklearn_counts_its_version(
    built_in: Any, fresh_versions: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = sys.modules[built_in.fn.__module__]
    assert not [n for n, v in vars(module).items() if "sklearn" in getattr(v, "__module__", "")]
    import sklearn

    before = _key(built_in)
    assert before.code["package sklearn"] == importlib.metadata.version("scikit-learn")

    monkeypatch.setattr(sklearn, "__version__", "0.0.1-other")
    package_version.cache_clear()
    clear_fingerprints()
    after = _key(built_in)
    assert after.code["package sklearn"] == "0.0.1-other"
    assert after.key != before.key


def _python(code: str) -> Any:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_building_and_fingerprinting_the_builtins_imports_no_step_library() -> None:
    code = """
import json, sys
from orchestrator.cache.fingerprint import code_fingerprint
from orchestrator.pipelines import BUILTIN
graph = BUILTIN["classification"].build({})
parts = {n: code_fingerprint(node.step.fn) for n, node in graph.nodes.items()}
print(json.dumps({
    "loaded": sorted(m for m in ("sklearn", "scipy", "pandas") if m in sys.modules),
    "train": parts["train"].get("package sklearn"),
    "features": parts["features"].get("package sklearn"),
    "validate": parts["validate"].get("package pandas"),
}))
"""
    got = _python(code)
    assert got == {
        "loaded": [],
        "train": importlib.metadata.version("scikit-learn"),
        "features": importlib.metadata.version("scikit-learn"),
        "validate": importlib.metadata.version("pandas"),
    }


def test_lazy_hints_print_like_the_classes() -> None:
    graph = classification.build({})
    train, features = graph.nodes["train"].step, graph.nodes["features"].step
    assert type_name(train.outputs[0]) == "sklearn.Pipeline"
    assert type_name(train.arguments["train"].annotation) == "pandas.DataFrame"
    assert [type_name(t) for t in features.outputs] == [
        "pandas.DataFrame",
        "pandas.DataFrame",
        "sklearn.ColumnTransformer",
    ]
    with pytest.raises(TypeError, match="import DataFrame from pandas"):
        train.arguments["train"].annotation()


@step
def score(model: BaseEstimator, test: pd.DataFrame) -> float:
    """A user's step typed with the real classes."""
    return 0.0


def test_a_user_step_typed_with_the_real_classes_still_fits_the_builtins() -> None:
    @pipeline
    def mixed() -> None:
        from orchestrator.steps import load_sklearn_dataset

        raw = load_sklearn_dataset()
        train_df, test_df, pre = split_features(raw)
        score(train_model(train_df, pre), test_df)

    assert isinstance(mixed, Pipeline)
    graph = mixed.build({})
    assert set(graph.nodes) == {"ingest", "features", "train", "score"}
