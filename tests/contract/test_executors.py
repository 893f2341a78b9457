"""One contract, every executor: a StepInvocation in, a StepResult out, failures as data."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import current, step
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.execution.local import EXECUTORS, make_executor
from orchestrator.execution.worker import StepInvocation


@step
def scale(df: pd.DataFrame, k: int = 2) -> pd.DataFrame:
    print("scaling by", k)
    current().log.info("scaled", k=k)
    return df * k


@step
def split(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    return df.head(1), len(df)


@step
def broken(df: pd.DataFrame) -> int:
    raise ValueError("bad row 3")


@step
def wrong_arity(df: pd.DataFrame) -> tuple[int, int]:
    return (1, 2, 3)  # type: ignore[return-value]


@step
def sleepy(df: pd.DataFrame) -> int:
    time.sleep(30)
    return 1


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


@step
def unprintable(df: pd.DataFrame) -> int:
    raise Unprintable()


@step
def spinning(df: pd.DataFrame) -> int:
    while True:
        pass


@step
def summed(xs: list[int]) -> dict[str, int]:
    return {"n": len(xs), "sum": sum(xs)}


@pytest.fixture(params=sorted(EXECUTORS))
def executor(request: pytest.FixtureRequest, tmp_path: Path):
    artifacts = ArtifactStore(tmp_path / "artifacts")
    ex = make_executor(request.param, artifacts)
    yield ex
    ex.shutdown()


def _invoke(ex, fn, **params):
    df_ref = ex.artifacts.put(pd.DataFrame({"a": [1, 2, 3]}))
    inv = StepInvocation(
        run_id="r1",
        pipeline="p",
        step=fn.name,
        step_ref=fn.ref,
        inputs={"df": df_ref},
        params=params,
        cache_key="k",
        attempt=1,
        pipeline_params={},
    )
    memo = {} if ex.in_process else None
    return ex.submit(inv, fn, memo)


def test_success_stores_outputs_and_captures_logs(executor) -> None:
    result = _invoke(executor, scale, k=3).result(timeout=60)
    assert result.ok, result.error
    (ref,) = result.outputs
    assert executor.artifacts.get(ref)["a"].tolist() == [3, 6, 9]
    assert "scaling by 3" in result.log
    assert "scaled k=3" in result.log


def test_several_outputs_become_several_artifacts(executor) -> None:
    result = _invoke(executor, split).result(timeout=60)
    assert result.ok, result.error
    assert [r.serializer for r in result.outputs] == ["arrow", "json"]
    assert executor.artifacts.get(result.outputs[1]) == 3


def test_small_values_go_in_and_come_back_inline(executor) -> None:
    xs = executor.artifacts.put([1, 2, 3])
    assert xs.data is not None  # inline: no file
    inv = StepInvocation(
        run_id="r1",
        pipeline="p",
        step="summed",
        step_ref=summed.ref,
        inputs={"xs": xs},
        params={},
        cache_key="k",
        attempt=1,
        pipeline_params={},
    )
    result = executor.submit(inv, summed, {} if executor.in_process else None).result(60)
    assert result.ok, result.error
    (ref,) = result.outputs
    assert ref.data is not None and ref == ref.from_json(ref.to_json())
    assert executor.artifacts.get(ref) == {"n": 3, "sum": 6}
    assert executor.artifacts.all_files() == []  # neither value became a file


def test_user_error_comes_back_as_data(executor) -> None:
    result = _invoke(executor, broken).result(timeout=60)
    assert not result.ok
    assert result.error == "ValueError: bad row 3"
    assert "raise ValueError" in (result.traceback or "")


def test_wrong_number_of_outputs_is_named(executor) -> None:
    result = _invoke(executor, wrong_arity).result(timeout=60)
    assert not result.ok
    assert "declares 2 outputs but returned 3 values" in (result.error or "")


def test_process_executor_kills_on_request(tmp_path: Path) -> None:
    ex = make_executor("process", ArtifactStore(tmp_path / "a"))
    fut = _invoke(ex, sleepy)
    time.sleep(0.3)
    assert ex.kill(fut)
    result = fut.result(timeout=10)
    assert not result.ok and "killed by signal 9" in (result.error or "")


def test_an_exception_that_cannot_be_printed_comes_back_as_data(executor) -> None:
    result = _invoke(executor, unprintable).result(timeout=60)
    assert not result.ok
    assert result.error == (
        "Unprintable: <its message could not be printed: RuntimeError in __str__>"
    )
    assert "Unprintable" in (result.traceback or "")


def test_thread_executor_stops_a_pure_python_loop(tmp_path: Path) -> None:
    ex = make_executor("thread", ArtifactStore(tmp_path / "a"))
    fut = _invoke(ex, spinning)
    time.sleep(0.3)
    assert ex.kill(fut)  # the loop saw the exception and its thread ended
    result = fut.result(timeout=5)
    assert not result.ok and "StepTimedOut" in (result.error or "")


def test_thread_executor_cannot_stop_a_step_blocked_in_c(tmp_path: Path) -> None:
    ex = make_executor("thread", ArtifactStore(tmp_path / "a"))
    fut = _invoke(ex, sleepy)
    time.sleep(0.3)
    assert not ex.kill(fut)  # time.sleep runs on; its daemon thread does not hold exit
    assert not fut.done()
