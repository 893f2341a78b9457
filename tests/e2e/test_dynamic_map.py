"""Lists of inputs and maps over lists produced at run time, through the CLI.

`shards` reads every `*.txt` of a folder at run time (cache=False: the folder is its
input), `measure.map(shard=...)` runs one child per shard, `total` takes the children's
outputs as a list. Each child counts its executions in `calls.log`, so the tests see
exactly which children ran.
"""

from __future__ import annotations

import pytest
from orchtest import Orch, Project, states, step_of

MAP = """
from pathlib import Path

from orchestrator import fixed, pipeline, step


@step(cache=False, kind="ingest")
def shards(folder: str = "data") -> list[str]:
    return [p.read_text() for p in sorted(Path(folder).glob("*.txt"))]


@step(kind="feature")
def measure(shard: str, factor: int = 1, bad: str = "") -> int:
    with open("calls.log", "a") as f:
        f.write(shard.split()[0] + "\\n")
    if bad and bad in shard:
        raise ValueError(f"bad shard {shard.split()[0]}")
    return len(shard) * factor


@step
def total(counts: list[int]) -> int:
    return sum(counts)


@pipeline
def main(folder: str = "data", bad: str = ""):
    return total(measure.map(shard=shards(folder), factor=fixed(2), bad=bad))
"""


def _shards(project: Project, n: int) -> None:
    for i in range(n):
        project.write(f"data/{i}.txt", f"s{i} {'x' * i}\n")


def _calls(project: Project) -> list[str]:
    path = project.path("calls.log")
    lines = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def test_map_runs_one_child_per_element_and_reruns_only_what_changed(
    orch: Orch, project: Project
) -> None:
    project.write("flow.py", MAP)
    _shards(project, 5)
    doc = orch.run("flow.py:main")
    children = [f"measure[{i}]" for i in range(5)]
    assert all(states(doc)[c] == "succeeded" for c in children)
    assert sorted(_calls(project)) == [f"s{i}" for i in range(5)]
    total = orch("artifact", doc["run_id"], "total")
    expected = sum(len(f"s{i} {'x' * i}\n") * 2 for i in range(5))
    assert str(expected) in total.out, total.describe()

    again = orch.run("flow.py:main")  # the same list: one hit for the whole map
    assert states(again)["measure"] == "cached" and states(again)["total"] == "cached"
    assert _calls(project) == []

    _shards(project, 6)  # a sixth shard: one more child, and the consumer
    added = orch.run("flow.py:main")
    assert _calls(project) == ["s5"]
    assert states(added)["measure[5]"] == "succeeded"
    assert all(states(added)[c] == "cached" for c in children)
    assert states(added)["total"] == "succeeded"
    assert "1 ran, 5 cached (ran: measure[5])" in step_of(added, "measure")["reason"]

    project.write("data/2.txt", "s2 changed bytes\n")  # one shard's content: that child
    changed = orch.run("flow.py:main")
    assert _calls(project) == ["s2"]
    why = orch("explain", changed["run_id"], "measure[2]")
    assert "input 'shard' changed" in why.out, why.describe()

    (project.root / "data" / "5.txt").unlink()  # removing one runs nothing upstream
    removed = orch.run("flow.py:main")
    assert _calls(project) == []
    assert states(removed)["total"] == "succeeded"


def test_failed_child_fails_the_map_naming_it_while_the_others_finish(
    orch: Orch, project: Project
) -> None:
    project.write("flow.py", MAP)
    _shards(project, 5)
    res = orch("run", "flow.py:main", "--param", "bad=s3", "--json")
    assert res.code != 0
    st = states(res.json)
    assert st["measure[3]"] == "failed"
    assert [st[f"measure[{i}]"] for i in (0, 1, 2, 4)] == ["succeeded"] * 4
    assert st["measure"] == "failed" and st["total"] == "skipped"
    error = step_of(res.json, "measure")["error"]
    assert "1 of 5 mapped children failed (measure[3])" in error
    assert "bad shard s3" in error
    assert "Traceback" not in res.err
    resumed = orch("resume", res.json["run_id"], "--json")  # finished children are reused
    assert resumed.code != 0
    assert states(resumed.json)["measure[0]"] == "cached"


def test_an_empty_list_gives_the_consumer_an_empty_list(orch: Orch, project: Project) -> None:
    project.write("flow.py", MAP)
    (project.root / "data").mkdir()
    doc = orch.run("flow.py:main")
    assert states(doc)["measure"] == "succeeded"
    assert not [s for s in states(doc) if s.startswith("measure[")]
    assert "0" in orch("artifact", doc["run_id"], "total").out


@pytest.mark.parametrize("executor", ["process", "sequential"])
def test_map_on_other_executors(orch: Orch, project: Project, executor: str) -> None:
    project.write("flow.py", MAP)
    _shards(project, 3)
    doc = orch.run("flow.py:main", "--executor", executor)
    assert [states(doc)[f"measure[{i}]"] for i in range(3)] == ["succeeded"] * 3
    assert sorted(_calls(project)) == ["s0", "s1", "s2"]


LISTS = """
from orchestrator import pipeline, step


@step
def fit(c: float = 1.0) -> float:
    return c * 2


@step
def best(scores: list[float]) -> float:
    return max(scores)


@step
def name() -> str:
    return "x"


@pipeline
def ok():
    return best([fit(c=0.5), fit(c=2.0), fit(c=1.0)])


@pipeline
def wrong():
    return best([fit(c=0.5), name()])


@pipeline
def not_a_list():
    return fit.map(c=fit())
"""


def test_list_of_outputs_fan_in_and_its_type_errors(orch: Orch, project: Project) -> None:
    project.write("lists.py", LISTS)
    doc = orch.run("lists.py:ok")
    assert states(doc)["fit_3"] == "succeeded"
    assert "4.0" in orch("artifact", doc["run_id"], "best").out
    res = orch("run", "lists.py:wrong")
    assert res.code == 2, res.describe()
    assert (
        "type mismatch: step 'name' outputs str but step 'best' input 'scores' item 1 expects float"
    ) in res.err
    assert "Traceback" not in res.err
    res = orch("run", "lists.py:not_a_list")
    assert res.code == 2, res.describe()
    assert "step 'fit_2' .map() maps over nothing" in res.err


PER_SEGMENT = """
import time

from orchestrator import pipeline, step


def _log(text: str) -> None:
    with open("calls.log", "a") as f:
        f.write(text + "\\n")


@step
def segments(n: int = 3) -> list[int]:
    return list(range(n))


@step
def base() -> int:
    _log("base")
    return 100


@step
def prep(seg: int, offset: int) -> int:
    _log(f"prep{seg}")
    return seg + offset


@step
def fit(x: int, k: int = 2) -> int:
    _log(f"fit{x}")
    return x * k


@step
def best(scores: list[int]) -> int:
    return max(scores)


@pipeline
def per_segment(seg, k: int = 2):
    return fit(prep(seg, base()), k=k)


@pipeline
def main(n: int = 3):
    return best(per_segment.map(seg=segments(n)))


@step
def slow(x: int) -> int:
    _log(f"start {time.monotonic()}")
    time.sleep(0.3)
    _log(f"end {time.monotonic()}")
    return x


@pipeline
def one_at_a_time(n: int = 3):
    return best(slow.map(x=segments(n), max_parallel=1))


@step
def rows(n: int = 2) -> list[list[int]]:
    return [[1, 2], [3]][:n]


@step
def label(row: list[int]) -> str:
    return f"row of {len(row)}"


@step
def tagged(x: int, tag: str) -> str:
    _log(f"tagged{x}")
    return f"{tag}: {x * 10}"


@pipeline
def per_row(row):
    return tagged.map(x=row, tag=label(row))


@pipeline
def nested(n: int = 2):
    return per_row.map(row=rows(n))


@pipeline
def twice(seg):
    return per_segment.map(seg=seg)


@pipeline
def pipelines_in_pipelines(n: int = 2):
    return twice.map(seg=rows(n))
"""


def test_map_over_a_sub_pipeline_runs_what_the_element_reaches_per_element(
    orch: Orch, project: Project
) -> None:
    project.write("seg.py", PER_SEGMENT)
    doc = orch.run("seg.py:main")
    assert sorted(_calls(project)) == ["base", "fit100", "fit101", "fit102"] + [
        f"prep{i}" for i in range(3)
    ]
    st = states(doc)
    assert st["per_segment.base"] == "succeeded"  # not reached by the element: once
    assert [st[f"per_segment.fit[{i}]"] for i in range(3)] == ["succeeded"] * 3
    assert "204" in orch("artifact", doc["run_id"], "best").out
    more = orch.run("seg.py:main", "--param", "n=4")
    assert sorted(_calls(project)) == ["fit103", "prep3"]
    assert states(more)["per_segment.fit[0]"] == "cached"


def test_max_parallel_bounds_the_children_running_at_once(orch: Orch, project: Project) -> None:
    project.write("seg.py", PER_SEGMENT)
    orch.run("seg.py:one_at_a_time")
    marks = [line.split() for line in project.path("calls.log").read_text().splitlines()]
    spans = [(float(a[1]), float(b[1])) for a, b in zip(marks[::2], marks[1::2], strict=True)]
    assert len(spans) == 3 and all(kind == "start" for kind, _ in marks[::2])
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:], strict=False))


def test_a_map_inside_a_mapped_sub_pipeline_maps_each_elements_own_list(
    orch: Orch, project: Project
) -> None:
    project.write("seg.py", PER_SEGMENT)
    doc = orch.run("seg.py:nested")
    st = states(doc)
    kids = ("per_row.tagged[0][0]", "per_row.tagged[0][1]", "per_row.tagged[1][0]")
    assert [st[c] for c in kids] == ["succeeded"] * 3
    assert sorted(_calls(project)) == ["tagged1", "tagged2", "tagged3"]
    out = orch("artifact", doc["run_id"], "per_row.tagged").out
    assert "[['row of 2: 10', 'row of 2: 20'], ['row of 1: 30']]" in out
    again = orch.run("seg.py:nested")
    assert states(again)["per_row.tagged"] == "cached"
    res = orch("run", "seg.py:pipelines_in_pipelines")
    assert res.code == 2, res.describe()
    assert "pipeline 'per_segment': .map() inside a mapped sub-pipeline is not supported" in (
        res.err
    )
    assert "Traceback" not in res.err


DUPLICATES = """
from orchestrator import pipeline, step


@step
def words() -> list[str]:
    return ["a", "a", "b", "a"]


@step
def upper(w: str) -> str:
    return w.upper()


@step
def join(ws: list[str]) -> str:
    return "".join(ws)


@pipeline
def dup():
    return join(upper.map(w=words(), max_parallel=1))
"""


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_equal_elements_each_get_their_child(orch: Orch, project: Project, executor: str) -> None:
    project.write("dup.py", DUPLICATES)
    doc = orch.run("dup.py:dup", "--executor", executor)
    assert [states(doc)[f"upper[{i}]"] for i in range(4)] == ["succeeded"] * 4
    assert "AABA" in orch("artifact", doc["run_id"], "join").out
