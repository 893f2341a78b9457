"""A cached value reaches its consumer with the same type as a fresh one.

Each producer returns one kind of value; its consumer (`cache=False`, so it runs every
time) returns a recursive description of what it received: type names, dtypes, index
classes. The first run hands fresh values over in memory (thread executor); the second
run's producers are cached, so their values are read back from the artifact store; a
process-executor run reads everything from the store. All three must describe the same
values the test builds itself.
"""

from __future__ import annotations

import json

from orchtest import Orch, Project, states, step_of

TYPES_PIPELINE = """
import datetime as dt
import typing

import numpy as np
import pandas as pd

from orchestrator import pipeline, step


def values():
    return {
        "tuple": (1, "a", (2.5, None)),
        "set": {1, 2, 3},
        "frozenset": frozenset({"a", "b"}),
        "int_keys": {1: "one", 2: {3: (4,)}},
        "nested_tuple_in_list": [(1, 2), [3]],
        "np_float": np.float64(1.5),
        "np_int": np.int32(7),
        "np_bool": np.bool_(True),
        "np_array_f32": np.arange(6, dtype="float32").reshape(2, 3),
        "nan_and_none": [float("nan"), None],
        "frame_range_index": pd.DataFrame({"a": [1, 2, 3]}),
        "frame_named_index": pd.DataFrame(
            {"a": [1.0, 2.0]}, index=pd.Index([10, 20], name="id")
        ),
        "frame_multi_index": pd.DataFrame(
            {"a": [1, 2]}, index=pd.MultiIndex.from_tuples([(1, "x"), (2, "y")], names=["i", "j"])
        ),
        "frame_categorical": pd.DataFrame(
            {"c": pd.Categorical(["a", "b"], categories=["b", "a", "z"], ordered=True)}
        ),
        "frame_tz": pd.DataFrame(
            {"t": pd.date_range("2024-03-30", periods=2, tz="Europe/Berlin")}
        ),
        "frame_int32": pd.DataFrame({"i": np.array([1, 2], dtype="int32")}),
        "series_int_name": pd.Series([1, 2], name=0),
    }


def describe(x):
    if isinstance(x, pd.DataFrame):
        return {
            "type": type(x).__name__,
            "index": type(x.index).__name__,
            "index_names": [str(n) for n in x.index.names],
            "columns": type(x.columns).__name__,
            "dtypes": {str(k): str(v) for k, v in x.dtypes.items()},
        }
    if isinstance(x, pd.Series):
        return {"type": "Series", "name": repr(x.name), "dtype": str(x.dtype),
                "index": type(x.index).__name__}
    if isinstance(x, np.ndarray):
        return {"type": "ndarray", "dtype": str(x.dtype), "shape": list(x.shape)}
    if isinstance(x, dict):
        return {"type": "dict", "items": [[describe(k), describe(v)] for k, v in x.items()]}
    if isinstance(x, (list, tuple)):
        return {"type": type(x).__name__, "items": [describe(v) for v in x]}
    if isinstance(x, (set, frozenset)):
        return {"type": type(x).__name__, "items": sorted(repr(v) for v in x)}
    return {"type": type(x).__name__}


@step(kind="ingest")
def make(kind: str) -> typing.Any:
    return values()[kind]


@step(kind="evaluate", cache=False)
def seen(x: typing.Any) -> str:
    import json

    return json.dumps(describe(x), sort_keys=True)


@pipeline
def types():
    for kind in values():
        seen(make(kind=kind, _name=f"make_{kind}"), _name=f"seen_{kind}")
"""


def _seen(orch: Orch, doc: dict) -> dict[str, dict]:
    out = {}
    for s in doc["steps"]:
        if s["name"].startswith("seen_"):
            (ref,) = s["outputs"]
            out[s["name"][5:]] = json.loads(json.loads(orch.artifact_bytes(ref["hash"])))
    return out


def _expected(project: Project) -> dict[str, dict]:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "types_pipe_for_test", project.path("types_pipe.py")
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {
        k: json.loads(json.dumps(mod.describe(v), sort_keys=True)) for k, v in mod.values().items()
    }


def test_cached_values_have_the_types_of_fresh_ones(orch: Orch, project: Project) -> None:
    project.write("types_pipe.py", TYPES_PIPELINE)
    expected = _expected(project)

    fresh = orch.run("types_pipe.py:types")
    assert set(states(fresh).values()) == {"succeeded"}
    cached = orch.run("types_pipe.py:types")
    assert all(
        state == ("cached" if name.startswith("make_") else "succeeded")
        for name, state in states(cached).items()
    )
    from_store = orch.run("types_pipe.py:types", "--executor", "process")

    for label, doc in (("fresh", fresh), ("cached", cached), ("process", from_store)):
        got = _seen(orch, doc)
        for kind, want in expected.items():
            assert got[kind] == want, f"{label} {kind}: {got[kind]} != {want}"
    # the same value gives the same artifact whichever run wrote it
    for kind in expected:
        assert (
            step_of(cached, f"make_{kind}")["outputs"] == step_of(fresh, f"make_{kind}")["outputs"]
        )


def test_a_frame_its_format_would_change_is_refused_with_one_clear_error(
    orch: Orch, project: Project
) -> None:
    project.write(
        "lists.py",
        """
        import pandas as pd

        from orchestrator import pipeline, step


        @step(kind="ingest")
        def frame() -> pd.DataFrame:
            return pd.DataFrame({"l": [[1, 2], [3]]})


        @pipeline
        def lists():
            frame()
        """,
    )
    run = orch.run("lists.py:lists", code=1)
    error = step_of(run, "frame")["error"]
    expected = "its DataFrame output would not come back the same from Arrow IPC"
    assert error.startswith(expected), error
    assert "column 'l'" in error and "serializer" in error
