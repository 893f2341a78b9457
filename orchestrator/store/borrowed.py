"""The metric points a batch's cached step runs borrow, merged into `run_metric_summary`.

A step taken from the cache brings the points its computing run logged for it (migration
0010). On PostgreSQL a row trigger adds them; on SQLite a row trigger cost more than
the rest of a cached row's insert (about 20 us a row, most of a cached step's record),
so since migration 0013 the writers of step runs (`fastpath.SqliteFastPath.write` and
`batch.BatchWriter.write_rows`) add them once per batch with `SQLITE_BORROWED`, right
after inserting the batch's step runs: the rows with an id above the largest one before
the insert (`SQLITE_LAST_ID`) that are cached. A batch without cached rows runs neither.
(`NOT INDEXED` keeps the planner on that id range: the indexes of step runs span every
run, so through one of them each batch would read every cached row ever stored.)
Grouped by run and metric, one statement merges exactly what the row trigger merged one
row at a time (the newest point wins; the points add up). A step run *updated* to cached
keeps its trigger on both databases (a rare write).
"""

from __future__ import annotations

SQLITE_LAST_ID = "SELECT coalesce(max(id), 0) FROM step_runs"

SQLITE_BORROWED = """INSERT INTO run_metric_summary (run_id, name, value, last_id, points)
SELECT g.run_id, g.name, v.value, g.last_id, g.points
FROM (SELECT st.run_id AS run_id, m.name AS name, max(m.id) AS last_id, count(*) AS points
      FROM step_runs AS st NOT INDEXED JOIN run_metrics m
        ON m.run_id = json_extract(st.reason, '$.from_run') AND m.step = st.name
      WHERE st.id > ? AND st.state = 'cached' AND m.run_id <> st.run_id
      GROUP BY st.run_id, m.name) AS g
JOIN run_metrics v ON v.id = g.last_id WHERE true
ON CONFLICT (run_id, name) DO UPDATE SET
  value = CASE WHEN excluded.last_id > run_metric_summary.last_id
    THEN excluded.value ELSE run_metric_summary.value END,
  last_id = CASE WHEN excluded.last_id > run_metric_summary.last_id
    THEN excluded.last_id ELSE run_metric_summary.last_id END,
  points = run_metric_summary.points + excluded.points"""


def any_cached(rows: list[dict[str, object]]) -> bool:
    """Whether a batch inserts a cached step run (only then are points borrowed)."""
    return any(r.get("state") == "cached" for r in rows)
