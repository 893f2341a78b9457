"""Experiment tracking on a real PostgreSQL server and a real SQLite file: the 0006
migration over a store that already holds runs (upgrade, downgrade, upgrade again), then
metrics recorded by a run and read back sorted and compared through the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from orchtest import Orch, Project  # noqa: E402

from orchestrator.store import db  # noqa: E402
from orchestrator.store.metadata import MetadataStore  # noqa: E402

TRACKING = {"run_metrics", "run_params", "run_artifacts"}

SWEEP = """
from orchestrator import current, pipeline, step


@step(kind="train")
def fit(alpha: float = 1.0) -> float:
    for epoch in range(3):
        current().log_metric("loss", alpha / (epoch + 1), step=epoch)
    current().log_params(tag="sweep")
    return alpha


@step(kind="evaluate")
def score(alpha: float) -> dict[str, float]:
    return {"r2": 1 - alpha / 10}


@pipeline
def sweep(alpha: float = 1.0):
    score(fit(alpha=alpha))
"""


def _alembic(url: str, verb: str, revision: str) -> None:
    engine = db.connect(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, verb)(cfg, revision)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _migration_round_trip(url: str) -> None:
    _alembic(url, "upgrade", "0005")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, pipeline, target, status, params, executor, started_at) "
                "VALUES ('old1', 'p', 'p.py:p', 'succeeded', '{}', 'thread', '2026-01-01')"
            )
        )
    engine.dispose()
    assert not TRACKING & _tables(url)

    store = MetadataStore(url)  # opening a store migrates it to head
    try:
        assert db.current_revision(store.engine) == db.HEAD
        assert store.get_run("old1")["status"] == "succeeded"  # nothing lost
        assert store.tracking.summaries(["old1"])["old1"]["metrics"] == {}
    finally:
        store.close()
    assert TRACKING <= _tables(url)

    _alembic(url, "downgrade", "0005")
    assert not TRACKING & _tables(url)
    _alembic(url, "upgrade", "head")
    assert TRACKING <= _tables(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0006_upgrades_downgrades_and_keeps_runs(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    _migration_round_trip(url)


def test_metrics_sort_and_compare_on_postgresql(pg_orch: Orch, pg_project: Project) -> None:
    pg_project.write("sweep.py", SWEEP)
    ids = {a: pg_orch.run("sweep.py:sweep", "-p", f"alpha={a}")["run_id"] for a in (1, 3, 2)}

    res = pg_orch("runs", "--sort", "-r2", "--columns", "params,metrics", "--json")
    assert res.code == 0, res.describe()
    assert [r["run_id"] for r in res.json["runs"]] == [ids[1], ids[2], ids[3]]
    assert [r["metrics"]["r2"] for r in res.json["runs"]] == pytest.approx([0.9, 0.8, 0.7])
    assert [r["metrics"]["loss"] for r in res.json["runs"]] == pytest.approx([1 / 3, 2 / 3, 1])
    assert {r["params"]["tag"] for r in res.json["runs"]} == {"sweep"}
    only = pg_orch("runs", "--filter", "alpha=2", "--json")
    assert [r["run_id"] for r in only.json["runs"]] == [ids[2]]

    cmp = pg_orch("compare", ids[1], ids[3], "--json")
    assert cmp.code == 0, cmp.describe()
    assert cmp.json["metrics"]["r2"]["best"] == ids[1]
    assert cmp.json["metrics"]["loss"]["best"] == ids[1]  # lower is better
    changes = [(c["step"], c["text"]) for c in cmp.json["differences"][0]["changes"]]
    assert changes == [
        ("fit", "parameter 'alpha' changed: 1.0 -> 3.0"),
        ("score", "input 'alpha' changed (new content hash, from step 'fit')"),
    ]
    series = cmp.json["series"]["loss"][ids[3]]
    assert [(p["position"], p["value"]) for p in series] == [(0, 3.0), (1, 1.5), (2, 1.0)]
