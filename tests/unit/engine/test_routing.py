"""`route`: which executor runs a step; each rule of orchestrator/engine/routing.py."""

from __future__ import annotations

from shapes import left

from orchestrator.engine.routing import Placement, placement_of, route

SQLITE = "sqlite:////tmp/orch.db"
POSTGRES = "postgresql+psycopg://orch@127.0.0.1/orch"


def test_a_plain_step_runs_on_the_runs_executor() -> None:
    for name in ("thread", "process", "dask"):
        assert route(left, Placement(name)) == name


def test_the_executor_hint_picks_a_local_pool() -> None:
    for hint in ("thread", "process", "sequential"):
        step = left.with_options(hints={"executor": hint})
        assert route(step, Placement("dask")) == hint
        assert route(step, Placement("docker", image="img")) == hint
    unknown = left.with_options(hints={"executor": "gpu"})
    assert route(unknown, Placement("thread")) == "thread"


def test_a_sequential_run_keeps_every_step_sequential() -> None:
    step = left.with_options(hints={"executor": "process"})
    assert route(step, Placement("sequential")) == "sequential"


def test_docker_without_any_image_runs_on_the_thread_pool() -> None:
    assert route(left, Placement("docker")) == "thread"
    assert route(left, Placement("docker", image="img")) == "docker"
    assert route(left.with_options(hints={"image": "mine"}), Placement("docker")) == "docker"


def test_a_store_step_runs_in_a_container_only_on_a_network_database() -> None:
    step = left.with_options(hints={"store": True})
    assert route(step, Placement("docker", "img", SQLITE)) == "thread"
    assert route(step, Placement("docker", "img", None)) == "thread"
    assert route(step, Placement("docker", "img", POSTGRES)) == "docker"
    assert route(step, Placement("dask", None, SQLITE)) == "dask"  # Docker's rule only


def test_the_placement_is_read_from_the_executors_configuration() -> None:
    class Configured:
        image, db_url = "img", POSTGRES

    assert placement_of("docker", Configured()) == Placement("docker", "img", POSTGRES)
    assert placement_of("thread", object()) == Placement("thread")
