"""The pure parts of `orch reproduce`: which step runs make a model version's lineage, and
why a rebuilt step's output differs (the order of the reasons is the contract)."""

from __future__ import annotations

from typing import Any

from orchestrator.reproduce import _elsewhere, lineage, why


def _row(name: str, outputs: list[str], **inputs: str) -> dict[str, Any]:
    return {
        "name": name,
        "outputs": [{"hash": h} for h in outputs],
        "inputs": inputs,
        "params": {"seed": 0},
    }


RUN = [
    _row("load", ["h-load"]),
    _row("other", ["h-other"]),  # a branch the model does not depend on
    _row("split", ["h-train", "h-test"], df="h-load"),
    _row("fit", ["h-model"], train="h-train"),
    _row("score", ["h-score"], model="h-model", test="h-test"),
]


def test_lineage_is_the_producer_and_its_ancestors_in_run_order() -> None:
    assert [r["name"] for r in lineage(RUN, "h-model")] == ["load", "split", "fit"]
    assert [r["name"] for r in lineage(RUN, "h-score")] == ["load", "split", "fit", "score"]
    assert lineage(RUN, "h-unknown") == []


CODE = {"function flow.fit": "a1", "package sklearn": "1.5.0", "package numpy": "2.0.0"}


def test_code_is_named_before_packages_params_and_data() -> None:
    new = CODE | {"function flow.fit": "b2", "package numpy": "2.1.0"}
    old_row, new_row = RUN[3], RUN[3] | {"inputs": {"train": "other"}}
    assert why(old_row, new_row, (CODE, new), []) == ("code", "code changed: function flow.fit")


def test_a_package_in_the_fingerprint_names_its_versions() -> None:
    new = CODE | {"package numpy": "2.1.0"}
    reason, detail = why(RUN[3], RUN[3], (CODE, new), [])
    assert (reason, detail) == ("package", "package changed: numpy 2.0.0 -> 2.1.0")


def test_params_then_data_then_run_packages_then_nondeterminism() -> None:
    row = RUN[3]
    assert why(row, row | {"params": {"seed": 1}}, (CODE, CODE), [])[0] == "params"
    data = why(row, row | {"inputs": {"train": "other"}}, (CODE, CODE), [])
    assert data == ("data", "input changed (other content hash): train")
    assert why(row, row, (CODE, CODE), ["scikit-learn 1.4.0 (installed: 1.5.0)"]) == (
        "package",
        "the run's package versions differ: scikit-learn 1.4.0 (installed: 1.5.0)",
    )
    assert why(row, row, (CODE, CODE), [])[0] == "nondeterminism"
    assert why(row, row, (None, CODE), [])[0] == "nondeterminism"  # an entry gone: no code


def test_a_step_passing_its_input_through_keeps_its_producer_in_the_lineage() -> None:
    run = [
        _row("ingest", ["h-raw"]),
        _row("validate", ["h-raw"], df="h-raw"),  # the same bytes out as in
        _row("fit", ["h-model"], df="h-raw"),
    ]
    assert [r["name"] for r in lineage(run, "h-model")] == ["ingest", "validate", "fit"]


def test_a_difference_after_containers_is_put_down_to_the_environment() -> None:
    """A version made in Docker containers (or on Dask workers) and rebuilt here, with
    nothing else different, is not called nondeterministic: the place differs."""
    row = RUN[3]
    docker = _elsewhere("docker", None)
    reason, detail = why(row, row, (CODE, CODE), [], docker)
    assert reason == "environment"
    assert "the original ran in Docker containers" in detail and "--image" in detail
    assert _elsewhere("dask", None).startswith("the original ran on the dask executor")
    assert why(row, row, (CODE, CODE), [], _elsewhere("dask", None))[0] == "environment"
    for same in (_elsewhere("thread", None), _elsewhere("process", None)):
        assert same == "" and why(row, row, (CODE, CODE), [], same)[0] == "nondeterminism"
    rebuilt_in_an_image = _elsewhere("docker", "orchestrator-pinned:abc")
    assert why(row, row, (CODE, CODE), [], rebuilt_in_an_image)[0] == "nondeterminism"
    changed = why(row, row | {"params": {"seed": 1}}, (CODE, CODE), [], docker)
    assert changed[0] == "params"  # a real difference is still named first
