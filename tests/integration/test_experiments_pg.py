"""The experiments table on a real PostgreSQL server: runs made through `orch` with
different parameters, then sorted by a metric and filtered by parameters and metrics in
SQL (the JSON operators differ from SQLite's), a run that took its steps from the cache
counted with the metrics and logged parameters of the run that computed them."""

from __future__ import annotations

from orchtest import Orch, Project
from test_experiments import (
    C_VALUES,
    EXPERIMENT,
    _runs,
    _write_data,
    assert_ranked_with_cache_hits_and_logged_params,
)


def test_runs_sorted_and_filtered_in_sql_on_postgres(pg_orch: Orch, pg_project: Project) -> None:
    pg_project.write("exp.py", EXPERIMENT)
    _write_data(pg_project, 300)
    five = {c: pg_orch.run("exp.py:exp", "-p", f"C={c}")["run_id"] for c in C_VALUES}
    ranked = _runs(pg_orch, "--sort", "log_loss", "--filter", "C>0.01")
    assert [r["params"]["C"] for r in ranked] and all(r["params"]["C"] > 0.01 for r in ranked)
    assert len(ranked) == 3
    assert_ranked_with_cache_hits_and_logged_params(pg_orch, pg_project, five)
