"""Composed pipelines, names, named outputs and params files, through the CLI.

`flow.py:main` calls sub-pipeline `data_science` twice (the second call named
`candidate`); `data_science` calls `modelling`, so steps sit two levels deep
(`data_science.modelling.fit`). `split` returns a NamedTuple (outputs `train`, `test`),
`score` an annotated tuple (outputs `error`, `rows`).
"""

from __future__ import annotations

import json
import re

import pytest
from orchtest import Orch, Project, states, step_of

FLOW = """
from typing import Annotated, NamedTuple

from pydantic import BaseModel

from orchestrator import pipeline, step


class SplitOptions(BaseModel):
    test_size: float = 0.25
    seed: int = 0


class Split(NamedTuple):
    train: list[float]
    test: list[float]


@step(kind="ingest")
def load(n: int = 8) -> list[float]:
    return [float(i) for i in range(n)]


@step(kind="feature")
def split(xs: list[float], options: SplitOptions = SplitOptions()) -> Split:
    k = round(len(xs) * (1 - options.test_size))
    return Split(xs[:k], xs[k:])


@step(kind="train")
def fit(train: list[float], alpha: float = 1.0, features: list[str] = []) -> dict:
    return {"w": sum(train) * alpha, "features": features}


@step(kind="evaluate")
def score(model: dict, test: list[float]) -> tuple[
    Annotated[float, "error"], Annotated[int, "rows"]
]:
    return model["w"] - sum(test), len(test)


@step(kind="evaluate")
def report(a: float, b: float) -> float:
    return a + b


@pipeline
def modelling(train, test, alpha: float = 1.0):
    return score(fit(train, alpha=alpha), test)


@pipeline
def data_science(xs, alpha: float = 0.5):
    parts = split(xs)
    error, rows = modelling(parts.train, parts.test, alpha=alpha)
    return {"error": error, "rows": rows}


@pipeline
def main(n: int = 8):
    xs = load(n=n)
    first = data_science(xs)
    second = data_science.named("candidate")(xs, alpha=2.0)
    report(first["error"], second["error"])
"""

STEPS = {
    "load",
    "data_science.split",
    "data_science.modelling.fit",
    "data_science.modelling.score",
    "candidate.split",
    "candidate.modelling.fit",
    "candidate.modelling.score",
    "report",
}


@pytest.fixture
def flow(project: Project) -> Project:
    project.write("flow.py", FLOW)
    return project


def params_of(doc: dict, step: str) -> dict:
    return step_of(doc, step)["params"]


def one_error(res: object) -> str:
    """The one `error:` line of a failed command (exit 2, no traceback)."""
    assert res.code == 2, res.describe()  # type: ignore[attr-defined]
    err: str = res.err  # type: ignore[attr-defined]
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_two_level_composition_runs_namespaced_and_is_cached(orch: Orch, flow: Project) -> None:
    doc = orch.run(
        "flow.py:main",
        "--param",
        "data_science.modelling.fit.alpha=0.1",
        "--param",
        "candidate.alpha=3",
    )
    assert set(states(doc)) == STEPS and set(states(doc).values()) == {"succeeded"}
    shown = orch.show(doc["run_id"])
    assert params_of(shown, "data_science.modelling.fit")["alpha"] == 0.1
    assert params_of(shown, "candidate.modelling.fit")["alpha"] == 3.0  # via the sub-pipeline
    assert shown["params"]["candidate"]["alpha"] == 3.0
    assert shown["params"]["data_science"]["modelling"]["fit"]["alpha"] == 0.1
    # the same command again: every namespaced step is a cache hit
    again = orch.run(
        "flow.py:main",
        "--param",
        "data_science.modelling.fit.alpha=0.1",
        "--param",
        "candidate.alpha=3",
    )
    assert set(states(again).values()) == {"cached"}
    text = orch("show", doc["run_id"], "--no-logs")
    assert text.code == 0, text.describe()
    assert re.search(r"^params:\n  candidate:\n    alpha: 3\.0$", text.out, re.M), text.out
    assert "output train: " in text.out and "output error: " in text.out


def test_graph_shows_groups_and_named_outputs(orch: Orch, flow: Project) -> None:
    text = orch("graph", "flow.py:main")
    assert text.code == 0, text.describe()
    assert "pipeline main: 8 steps" in text.out
    assert "group candidate: pipeline data_science" in text.out
    assert "group data_science.modelling: pipeline modelling" in text.out
    assert "data_science.split (feature) -> train: list[float], test: list[float]" in text.out
    assert "test <- data_science.split.test" in text.out
    assert "a <- data_science.modelling.score.error" in text.out
    mermaid = orch("graph", "flow.py:main", "-f", "mermaid")
    assert mermaid.code == 0, mermaid.describe()
    assert 'subgraph g_candidate["candidate (data_science)"]' in mermaid.out
    assert 'subgraph g_data_science__modelling["modelling"]' in mermaid.out
    assert "data_science__split --> data_science__modelling__fit" in mermaid.out
    assert mermaid.out.count("subgraph") == mermaid.out.count("\n    end") + mermaid.out.count(
        "\n        end"
    )
    dot = orch("graph", "flow.py:main", "-f", "dot")
    assert dot.code == 0, dot.describe()
    assert 'subgraph "cluster_data_science.modelling" {' in dot.out
    assert '"load" -> "candidate.split";' in dot.out


def test_named_outputs_in_run_json(orch: Orch, flow: Project) -> None:
    doc = orch.run("flow.py:main")
    names = {s["name"]: [o["name"] for o in s["outputs"]] for s in doc["steps"]}
    assert names["data_science.split"] == ["train", "test"]
    assert names["candidate.modelling.score"] == ["error", "rows"]
    assert names["load"] == ["output"]  # an unnamed single output


@pytest.mark.parametrize("fmt", ["yaml", "toml", "json"])
def test_params_file_with_nested_keys_and_param_on_top(orch: Orch, flow: Project, fmt: str) -> None:
    files = {
        "yaml": """
            n: 6
            data_science:
              split:
                options:
                  test_size: 0.5
              modelling:
                fit:
                  alpha: 0.2
                  features: [engines, crew]
            candidate.alpha: 4
            """,
        "toml": """
            n = 6
            "candidate.alpha" = 4

            [data_science.split.options]
            test_size = 0.5

            [data_science.modelling.fit]
            alpha = 0.2
            features = ["engines", "crew"]
            """,
        "json": json.dumps(
            {
                "n": 6,
                "candidate": {"alpha": 4},
                "data_science": {
                    "split": {"options": {"test_size": 0.5}},
                    "modelling": {"fit": {"alpha": 0.2, "features": ["engines", "crew"]}},
                },
            }
        ),
    }
    flow.write(f"params.{fmt}", files[fmt])
    doc = orch.run(
        "flow.py:main",
        "--params-file",
        f"params.{fmt}",
        "--param",
        "data_science.modelling.fit.alpha=0.3",  # --param wins over the file
    )
    shown = orch.show(doc["run_id"])
    assert params_of(shown, "load") == {"n": 6}
    # one field of the pydantic model set, the other keeps its default
    assert params_of(shown, "data_science.split")["options"] == {"test_size": 0.5, "seed": 0}
    assert params_of(shown, "candidate.split")["options"] == {"test_size": 0.25, "seed": 0}
    fit = params_of(shown, "data_science.modelling.fit")
    assert fit["alpha"] == 0.3 and fit["features"] == ["engines", "crew"]
    assert params_of(shown, "candidate.modelling.fit")["alpha"] == 4.0
    assert shown["params"]["n"] == 6
    assert shown["params"]["data_science"]["split"]["options"]["test_size"] == 0.5
    graph = orch("graph", "flow.py:main", "--params-file", f"params.{fmt}")
    assert graph.code == 0, graph.describe()


def test_param_sets_one_field_of_a_model_and_a_comma_separated_list(
    orch: Orch, flow: Project
) -> None:
    doc = orch.run(
        "flow.py:main",
        "--param",
        "candidate.split.options.test_size=0.5",
        "--param",
        "candidate.modelling.fit.features=engines,crew",
    )
    shown = orch.show(doc["run_id"])
    assert params_of(shown, "candidate.split")["options"] == {"test_size": 0.5, "seed": 0}
    assert params_of(shown, "candidate.modelling.fit")["features"] == ["engines", "crew"]


def test_unknown_keys_in_a_params_file_are_one_error(orch: Orch, flow: Project) -> None:
    flow.write(
        "params.yaml",
        """
        nn: 3
        data_science:
          modeling:
            fit:
              alpha: 0.2
          split:
            options:
              tst_size: 0.1
        """,
    )
    err = one_error(orch("run", "flow.py:main", "--json", "--params-file", "params.yaml"))
    assert "pipeline 'main' has no parameter 'nn' (did you mean 'n'?)" in err
    assert "has no step 'data_science.modeling' (did you mean 'data_science.modelling'?)" in err
    assert "SplitOptions has no field 'tst_size' (did you mean 'test_size'?)" in err
    assert "params file params.yaml" in err
    assert not orch.db.exists() or orch.runs() == []


@pytest.mark.parametrize(
    ("param", "fragments"),
    [
        (
            "data_science.alpha=true",
            [
                "pipeline 'data_science' parameter 'data_science.alpha'",
                "expected float, got 'true'",
                "Input should be a valid number",
            ],
        ),
        ("n=1.5", ["pipeline 'main' parameter 'n'", "expected int, got '1.5'"]),
        (
            "candidate.modelling.fit.features=[1]",
            ["step 'candidate.modelling.fit' parameter 'features'", "expected list[str]"],
        ),
        (
            "data_science.split.options.test_size=big",
            ["parameter 'options' field 'test_size'", "expected float, got 'big'"],
        ),
        (
            "data_science.xs=1",
            ["'data_science.xs' is an input of pipeline 'data_science'", "not a parameter"],
        ),
        ("data_science=1", ["'data_science' is a sub-pipeline, not a parameter"]),
    ],
    ids=["bool-for-float", "float-for-int", "int-in-list", "model-field", "input", "namespace"],
)
def test_command_line_values_are_read_strictly(
    orch: Orch, flow: Project, param: str, fragments: list[str]
) -> None:
    err = one_error(orch("run", "flow.py:main", "--json", "--param", param))
    for fragment in fragments:
        assert fragment in err, err


def test_a_params_file_value_validates_normally(orch: Orch, flow: Project) -> None:
    flow.write("params.yaml", "candidate:\n  alpha: '2.5'\n")  # text, as YAML quoting gives
    doc = orch.run("flow.py:main", "--params-file", "params.yaml")
    assert params_of(orch.show(doc["run_id"]), "candidate.modelling.fit")["alpha"] == 2.5


def test_every_suggested_name_is_accepted(orch: Orch, flow: Project) -> None:
    err = one_error(
        orch("run", "flow.py:main", "--json", "--param", "candidate.modeling.fit.alpha=2")
    )
    suggested = re.search(r"did you mean '([^']+)'", err)
    assert suggested and suggested.group(1) == "candidate.modelling", err
    doc = orch.run("flow.py:main", "--param", f"{suggested.group(1)}.fit.alpha=2")
    assert params_of(orch.show(doc["run_id"]), "candidate.modelling.fit")["alpha"] == 2.0


NAMES = """
from orchestrator import pipeline, step


@step
def load(n: int = 2) -> list[int]:
    return list(range(n))


@step
def total(a: list[int], b: list[int], c: list[int]) -> int:
    return sum(a) + sum(b) + sum(c)


@pipeline
def twice():
    total(load(), load(n=3), load.named("third")(n=4))
"""


def test_call_names_auto_and_given(orch: Orch, project: Project) -> None:
    project.write("names.py", NAMES)
    doc = orch.run("names.py:twice", "--param", "load_2.n=5")
    assert set(states(doc)) == {"load", "load_2", "third", "total"}
    shown = orch.show(doc["run_id"])
    assert params_of(shown, "load_2") == {"n": 5} and params_of(shown, "third") == {"n": 4}


@pytest.mark.parametrize(
    "call", ['load.named("a.b")(n=4)', 'load(n=4, _name="a.b")', 'load(_name="2nd")']
)
def test_an_invalid_call_name_is_one_error_with_the_rule(
    orch: Orch, project: Project, call: str
) -> None:
    project.write("names.py", NAMES.replace('load.named("third")(n=4)', call))
    res = orch("run", "names.py:twice", "--json")
    assert res.code == 2 and res.err.startswith("error: "), res.describe()
    assert "Traceback" not in res.err
    err = res.err
    bad = re.search(r'"([^"]+)"', call).group(1)  # type: ignore[union-attr]
    assert f"step call name '{bad}' is not valid" in err
    assert "a name starts with a letter or '_'" in err
    assert "the dot is reserved for sub-pipeline namespaces" in err


MIXED = """
import sys

from orchestrator import pipeline, step


@step
def load(n: int = 2) -> list[int]:
    return list(range(n))


@step
def use(xs: list[int]) -> int:
    return len(xs)


@pipeline
def good(n: int = 3):
    use(load(n=n))


@pipeline
def unresolved(n: "NoSuchType" = 1):  # noqa: F821
    load()


@pipeline
def star(*args):
    load()


@pipeline(name="has.dot")
def dotted():
    load()


@pipeline
def inner(xs, k: int = 1):
    return use(xs)


@pipeline
def missing_input():
    inner()


@pipeline
def unknown_argument():
    inner(load(), kk=2)


@pipeline
def boom():
    load()
    raise ValueError("no data for this pipeline")


@pipeline
def calls_boom():
    inner(load())
    boom()


@pipeline
def exits():
    sys.exit(4)
"""


@pytest.mark.parametrize(
    ("target", "fragments"),
    [
        ("unresolved", ["pipeline 'unresolved': cannot read its type hints", "NoSuchType"]),
        ("star", ["pipeline 'star': *args and **kwargs are not supported"]),
        ("dotted", ["pipeline name 'has.dot' is not valid"]),
        ("inner", ["pipeline 'inner' has input(s) 'xs'", "give each a default value"]),
        (
            "missing_input",
            ["pipeline 'inner' in pipeline 'missing_input' is missing input(s) 'xs'"],
        ),
        (
            "unknown_argument",
            ["pipeline 'inner' in pipeline 'unknown_argument' has no input or parameter 'kk'"],
        ),
        (
            "boom",
            [
                "pipeline 'boom' failed while its graph was being built (mixed.py, line 54)",
                "ValueError: no data for this pipeline",
            ],
        ),
        ("calls_boom", ["pipeline 'boom' failed", "(mixed.py, line 54)"]),
        ("exits", ["pipeline 'exits' failed", "line 65", "SystemExit (sys.exit(4))"]),
    ],
)
def test_one_broken_pipeline_does_not_stop_the_others(
    orch: Orch, project: Project, target: str, fragments: list[str]
) -> None:
    project.write("mixed.py", MIXED)
    err = one_error(orch("run", f"mixed.py:{target}", "--json"))
    for fragment in fragments:
        assert fragment in err, err
    good = orch.run("mixed.py:good")  # the same file, another pipeline
    assert states(good) == {"load": "succeeded", "use": "succeeded"}


def test_sys_exit_at_import_is_one_error(orch: Orch, project: Project) -> None:
    project.write("leaves.py", "import sys\n\nsys.exit(3)\n")
    for command in (["run", "leaves.py:p", "--json"], ["graph", "leaves.py:p"]):
        err = one_error(orch(*command))
        assert "cannot load leaves.py: line 3: it called sys.exit(3) while being imported" in err
