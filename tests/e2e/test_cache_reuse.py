"""The content-hash cache as a user meets it: re-runs, `--param` changes, `orch explain`.

The demo pipeline (see `orchtest.DEMO_PIPELINE`)::

    load ─┬─> double ──┐
          ├─> cleaned ─┴─> total
          └─> count

A change must re-run exactly the changed step and the descendants whose inputs changed;
everything else is `cached`.
"""

from __future__ import annotations

from orchtest import DEMO_STEPS, Orch, Project, states, step_of

ALL_CACHED = dict.fromkeys(DEMO_STEPS, "cached")


def test_first_run_succeeds_second_is_cached(orch: Orch, demo_project: Project) -> None:
    first = orch.run("pipe.py:demo")
    assert first["status"] == "succeeded"
    assert states(first) == dict.fromkeys(DEMO_STEPS, "succeeded")
    assert {s["name"]: s["kind"] for s in first["steps"]} == {
        "load": "ingest",
        "double": "feature",
        "cleaned": "feature",
        "total": "evaluate",
        "count": "evaluate",
    }
    for s in first["steps"]:
        assert s["attempts"] == 1 and s["error"] is None
        assert len(s["outputs"]) == 1 and s["cache_key"]

    second = orch.run("pipe.py:demo")
    assert second["status"] == "succeeded"
    assert second["run_id"] != first["run_id"]
    assert states(second) == ALL_CACHED
    for name in DEMO_STEPS:
        a, b = step_of(first, name), step_of(second, name)
        assert b["cache_key"] == a["cache_key"]
        assert b["outputs"] == a["outputs"]
        assert first["run_id"] in b["reason"]

    listed = orch.runs()
    assert [r["run_id"] for r in listed] == [second["run_id"], first["run_id"]]
    assert all(r["status"] == "succeeded" for r in listed)
    assert listed[0]["counts"] == {"cached": 5}


def test_pipeline_param_change_reruns_only_the_step_and_its_descendants(
    orch: Orch, demo_project: Project
) -> None:
    orch.run("pipe.py:demo")

    changed = orch.run("pipe.py:demo", "--param", "k=3")
    assert states(changed) == {
        "load": "cached",
        "double": "succeeded",
        "cleaned": "cached",
        "total": "succeeded",
        "count": "cached",
    }
    assert "parameter 'k' changed: 2 -> 3" in orch.explain(changed["run_id"], "double")
    assert "input 'a' changed" in orch.explain(changed["run_id"], "total")

    # a parameter of the first step re-runs the whole graph below it
    bigger = orch.run("pipe.py:demo", "-p", "n=6")
    assert states(bigger) == dict.fromkeys(DEMO_STEPS, "succeeded")
    assert "parameter 'n' changed: 5 -> 6" in orch.explain(bigger["run_id"], "load")

    # and going back to the first parameters is still cached
    assert states(orch.run("pipe.py:demo")) == ALL_CACHED


def test_step_param_override_reruns_that_step_and_descendants(
    orch: Orch, demo_project: Project
) -> None:
    orch.run("pipe.py:demo")
    run = orch.run("pipe.py:demo", "--param", "double.k=4")
    assert states(run) == {
        "load": "cached",
        "double": "succeeded",
        "cleaned": "cached",
        "total": "succeeded",
        "count": "cached",
    }
    shown = orch.show(run["run_id"])
    assert shown["params"] == {"n": 5, "k": 2, "double": {"k": 4}}  # recorded nested
    assert step_of(shown, "double")["params"] == {"k": 4}


def test_unchanged_output_stops_recomputation_downstream(orch: Orch, demo_project: Project) -> None:
    """A re-run step whose output bytes did not change leaves its children cached."""
    orch.run("pipe.py:demo")
    demo_project.edit("pipe.py", "return [x * k for x in xs]", "return [k * x for x in xs]")
    run = orch.run("pipe.py:demo")
    # double's code changed, so it runs; its output is byte-identical, so total is cached
    assert states(run) == {
        "load": "cached",
        "double": "succeeded",
        "cleaned": "cached",
        "total": "cached",
        "count": "cached",
    }


def test_explicit_default_value_is_a_cache_hit(orch: Orch, demo_project: Project) -> None:
    """`--param count.offset=0` sets the value `count` already runs with: nothing to redo."""
    orch.run("pipe.py:demo")
    run = orch.run("pipe.py:demo", "--param", "count.offset=0")
    assert states(run) == ALL_CACHED


def test_explain_names_the_old_value_of_a_defaulted_step_param(
    orch: Orch, demo_project: Project
) -> None:
    orch.run("pipe.py:demo")
    run = orch.run("pipe.py:demo", "--param", "count.offset=1")
    assert states(run)["count"] == "succeeded"
    assert "parameter 'offset' changed: 0 -> 1" in orch.explain(run["run_id"], "count")


def test_explain_of_unknown_step_is_a_clean_error(orch: Orch, demo_project: Project) -> None:
    run = orch.run("pipe.py:demo")
    res = orch("explain", run["run_id"], "totl")
    assert res.code == 2, res.describe()
    assert "has no step 'totl'" in res.err and "did you mean 'total'" in res.err
    assert "Traceback" not in res.err


# -- source edits -------------------------------------------------------------------------


def test_editing_a_step_reruns_it_and_its_descendants(orch: Orch, demo_project: Project) -> None:
    orch.run("pipe.py:demo")
    demo_project.edit("pipe.py", "return [x * k for x in xs]", "return [x * k + 1 for x in xs]")

    run = orch.run("pipe.py:demo")
    assert states(run) == {
        "load": "cached",
        "double": "succeeded",
        "cleaned": "cached",
        "total": "succeeded",
        "count": "cached",
    }
    why = orch.explain(run["run_id"], "double")
    assert "code changed: function" in why and ".double" in why
    assert "input 'a' changed" in orch.explain(run["run_id"], "total")
    assert states(orch.run("pipe.py:demo")) == ALL_CACHED


def test_editing_a_helper_in_another_module_reruns_its_callers(
    orch: Orch, demo_project: Project
) -> None:
    orch.run("pipe.py:demo")
    expected = {
        "load": "cached",
        "double": "cached",
        "cleaned": "succeeded",
        "total": "succeeded",
        "count": "cached",
    }

    # the helper the step calls as `helpers.clean(x)`
    demo_project.edit("helpers.py", "return _shift(x) * SCALE", "return _shift(x) * SCALE + 1")
    run = orch.run("pipe.py:demo")
    assert states(run) == expected
    assert "code changed: function helpers.clean" in orch.explain(run["run_id"], "cleaned")

    # a helper of that helper, a module-level constant it reads, and a function imported
    # with `from helpers import weight` used by the leaf step `count`; `explain` names each
    demo_project.edit("helpers.py", "return x + 1", "return x + 2")
    demo_project.edit("helpers.py", "SCALE = 10", "SCALE = 100")
    demo_project.edit("helpers.py", "return x % 3", "return x % 4")
    run = orch.run("pipe.py:demo")
    assert states(run) == {**expected, "count": "succeeded"}
    why = orch.explain(run["run_id"], "cleaned")
    assert "code changed: function helpers._shift" in why
    assert "helpers.SCALE" in why
    assert "helpers.clean" not in why
    why = orch.explain(run["run_id"], "count")
    assert "code changed: function helpers.weight" in why
    assert "helpers._shift" not in why


def test_comment_docstring_and_formatting_edits_keep_the_cache(
    orch: Orch, demo_project: Project
) -> None:
    orch.run("pipe.py:demo")

    demo_project.edit(
        "pipe.py",
        "def double(xs: list[int], k: int = 2) -> list[int]:\n    return [x * k for x in xs]",
        "def double(xs: list[int], k: int = 2) -> list[int]:\n"
        '    """Multiply every value by k."""\n'
        "    # a comment inside the step\n\n"
        "    return [x*k   for x in xs]  # trailing comment",
    )
    demo_project.edit(
        "pipe.py",
        '@step(kind="evaluate")\ndef total',
        '# the sum of both branches\n@step(kind="evaluate")\ndef total',
    )
    demo_project.edit(
        "helpers.py",
        "def clean(x: int) -> int:\n    return _shift(x) * SCALE",
        "def clean(x: int) -> int:\n"
        '    """Shift, then scale."""\n'
        "    # explain the maths\n"
        "    return (_shift(x)\n            * SCALE)",
    )
    demo_project.write(
        "helpers.py",
        "# helpers of the demo project\n\n" + demo_project.path("helpers.py").read_text(),
    )

    run = orch.run("pipe.py:demo")
    assert states(run) == ALL_CACHED


# -- file inputs --------------------------------------------------------------------------

FILES_PIPELINE = """
import pandas as pd

from orchestrator import FileInput, pipeline, step


@step(kind="ingest")
def ingest(path: FileInput) -> pd.DataFrame:
    return pd.read_csv(path)


@step(kind="feature")
def enrich(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(z=df["x"] * 2)


@step(kind="evaluate")
def summarize(df: pd.DataFrame) -> dict[str, float]:
    return {"rows": float(len(df)), "z": float(df["z"].sum())}


@step
def constant() -> int:
    return 42


@pipeline
def files(path: str = "data.csv"):
    summarize(enrich(ingest(path=path)))
    constant()
"""


def test_changed_input_file_reruns_from_ingest(orch: Orch, project: Project) -> None:
    project.write("files.py", FILES_PIPELINE)
    data = project.write("data.csv", "x,y\n1,a\n2,b\n3,c\n")

    first = orch.run("files.py:files")
    assert set(states(first).values()) == {"succeeded"}

    data.write_text("x,y\n1,a\n2,b\n4,c\n")
    run = orch.run("files.py:files")
    assert states(run) == {
        "ingest": "succeeded",
        "enrich": "succeeded",
        "summarize": "succeeded",
        "constant": "cached",
    }
    assert "parameter 'path' changed" in orch.explain(run["run_id"], "ingest")
    assert step_of(run, "ingest")["outputs"] != step_of(first, "ingest")["outputs"]

    # the first content again: the first run's cache entries are found again
    data.write_text("x,y\n1,a\n2,b\n3,c\n")
    back = orch.run("files.py:files")
    assert states(back)["enrich"] == "cached"
    assert step_of(back, "summarize")["outputs"] == step_of(first, "summarize")["outputs"]


def test_same_bytes_with_a_new_mtime_stay_cached(orch: Orch, project: Project) -> None:
    import os

    project.write("files.py", FILES_PIPELINE)
    data = project.write("data.csv", "x,y\n1,a\n2,b\n")
    orch.run("files.py:files")

    content = data.read_bytes()
    data.unlink()
    data.write_bytes(content)  # a new file (new inode) with the same bytes
    st = data.stat()
    os.utime(data, (st.st_atime + 3600, st.st_mtime + 3600))

    run = orch.run("files.py:files")
    assert set(states(run).values()) == {"cached"}


def test_missing_input_file_fails_with_a_clear_message(orch: Orch, project: Project) -> None:
    project.write("files.py", FILES_PIPELINE)
    run = orch.run("files.py:files", "--param", "path=nowhere.csv", code=1)
    assert run["status"] == "failed"
    assert states(run) == {
        "ingest": "failed",
        "enrich": "skipped",
        "summarize": "skipped",
        "constant": "succeeded",
    }
    assert "nowhere.csv" in step_of(run, "ingest")["error"]


# -- several outputs ----------------------------------------------------------------------

SPLIT_PIPELINE = """
from orchestrator import pipeline, step


@step(kind="ingest")
def load(values: list[int]) -> list[int]:
    return values


@step(kind="feature")
def split(xs: list[int], pivot: int = 10) -> tuple[list[int], list[int]]:
    return [x for x in xs if x < pivot], [x for x in xs if x >= pivot]


@step(kind="evaluate")
def low_sum(xs: list[int]) -> int:
    return sum(xs)


@step(kind="evaluate")
def high_sum(xs: list[int]) -> int:
    return sum(xs)


@pipeline
def halves(values: list[int] = [1, 2, 30, 40]):
    low, high = split(load(values))
    low_sum(low)
    high_sum(high)
"""


def test_each_output_of_a_multi_output_step_is_tracked_on_its_own(
    orch: Orch, project: Project
) -> None:
    project.write("halves.py", SPLIT_PIPELINE)
    first = orch.run("halves.py:halves")
    assert states(first) == dict.fromkeys(["load", "split", "low_sum", "high_sum"], "succeeded")
    assert len(step_of(first, "split")["outputs"]) == 2

    # only the high half changes: the consumer of the low half stays cached
    run = orch.run("halves.py:halves", "--param", "values=[1, 2, 30, 50]")
    assert states(run) == {
        "load": "succeeded",
        "split": "succeeded",
        "low_sum": "cached",
        "high_sum": "succeeded",
    }
    low0, high0 = step_of(first, "split")["outputs"]
    low1, high1 = step_of(run, "split")["outputs"]
    assert low1 == low0 and high1 != high0
    assert "input 'xs' changed" in orch.explain(run["run_id"], "high_sum")


# -- where the project lives ----------------------------------------------------------------


def test_the_same_project_in_another_folder_is_all_cached(
    orch: Orch, demo_project: Project, tmp_path
) -> None:
    """A second clone, a CI checkout, a container mount: the same code hits the cache."""
    import shutil

    demo_project.write(
        "pkg/__init__.py", ""
    )  # a package inside the project, reached from the pipeline file
    demo_project.write("pkg/tools.py", "BASE = __file__\n\n\ndef inc(x):\n    return x + 1\n")
    demo_project.edit("pipe.py", "return sum(a) + sum(b)", "return tools.inc(sum(a) + sum(b))")
    demo_project.edit("pipe.py", "import helpers\n", "import helpers\nfrom pkg import tools\n")
    first = orch.run("pipe.py:demo")
    assert states(first) == dict.fromkeys(DEMO_STEPS, "succeeded")

    elsewhere = tmp_path / "elsewhere" / "deeper" / "copy"
    shutil.copytree(demo_project.root, elsewhere)
    run = orch.run(str(elsewhere / "pipe.py") + ":demo")
    assert states(run) == ALL_CACHED, run
    for name in DEMO_STEPS:
        assert step_of(run, name)["cache_key"] == step_of(first, name)["cache_key"]

    # an edit in the copy is still seen, and named without the folder's path
    Project(elsewhere).edit(
        "pipe.py", "return [x * k for x in xs]", "return [x * k + 1 for x in xs]"
    )
    run = orch.run(str(elsewhere / "pipe.py") + ":demo")
    assert states(run)["double"] == "succeeded"
    why = orch.explain(run["run_id"], "double")
    assert "code changed: function pipe.double" in why, why
    assert "elsewhere" not in why and "orch_user" not in why


# -- file inputs that are not regular files ---------------------------------------------------


def test_a_file_input_that_is_not_a_regular_file_is_refused_at_once(
    orch: Orch, project: Project
) -> None:
    import os

    project.write("files.py", FILES_PIPELINE)
    fifo = project.path("pipe.fifo")
    os.mkfifo(fifo)
    project.path("adir").mkdir()
    for path, kind in (
        ("/dev/zero", "a character device"),
        (str(fifo), "a FIFO"),
        ("adir", "a directory"),
    ):
        res = orch("run", "files.py:files", "--json", "--param", f"path={path}", timeout=30)
        assert res.code == 1, res.describe()
        assert "Traceback" not in res.err, res.describe()
        got = states(res.json)
        assert (got["ingest"], got["enrich"], got["summarize"]) == ("failed", "skipped", "skipped")
        assert step_of(res.json, "ingest")["error"] == (
            f"step 'ingest' parameter 'path': {path} is not a regular file ({kind}); "
            "a FileInput must name a regular file"
        )
