"""The metric points a batch's cached step runs borrow, merged into `run_metric_summary`.

A step taken from the cache brings the points its computing run logged for it (migration
0010). A row trigger added them one inserted row at a time; on SQLite that cost more than
the rest of a cached row's insert (about 20 us a row, most of a cached step's record), on
PostgreSQL a PL/pgSQL call per row (most of a cached re-run's one write), so the writers
of step runs add them once per batch instead, right after inserting the batch's step
runs, and only for a batch with cached rows (`any_cached`):

* SQLite (since migration 0013; `fastpath.SqliteFastPath.write`, `batch.BatchWriter.
  write_rows`): `SQLITE_BORROWED`, over the rows with an id above the largest one before
  the insert (`SQLITE_LAST_ID`) that are cached. (`NOT INDEXED` keeps the planner on that
  id range: the indexes of step runs span every run, so through one of them each batch
  would read every cached row ever stored.)
* PostgreSQL (since migration 0014; `pgpath.PostgresFastPath.write`, in the round's one
  round trip, and `batch.BatchWriter.write_rows`): `PG_BORROWED` (`PG_BORROWED_PORTABLE`
  with a named parameter), over the batch's cached rows sent as one JSON parameter
  (`pg_document`: run id, step name and the run the step came from), so concurrent runs'
  rows are never mixed in.

Grouped by run and metric, one statement merges exactly what the row trigger merged one
row at a time (the newest point wins; the points add up), and it sees the points the row
trigger saw (those stored before the batch's step runs). A step run *updated* to cached
keeps its trigger on both databases (a rare write).
"""

from __future__ import annotations

import json

SQLITE_LAST_ID = "SELECT coalesce(max(id), 0) FROM step_runs"

_MERGE = """ON CONFLICT (run_id, name) DO UPDATE SET
  value = CASE WHEN excluded.last_id > run_metric_summary.last_id
    THEN excluded.value ELSE run_metric_summary.value END,
  last_id = CASE WHEN excluded.last_id > run_metric_summary.last_id
    THEN excluded.last_id ELSE run_metric_summary.last_id END,
  points = run_metric_summary.points + excluded.points"""

SQLITE_BORROWED = f"""INSERT INTO run_metric_summary (run_id, name, value, last_id, points)
SELECT g.run_id, g.name, v.value, g.last_id, g.points
FROM (SELECT st.run_id AS run_id, m.name AS name, max(m.id) AS last_id, count(*) AS points
      FROM step_runs AS st NOT INDEXED JOIN run_metrics m
        ON m.run_id = json_extract(st.reason, '$.from_run') AND m.step = st.name
      WHERE st.id > ? AND st.state = 'cached' AND m.run_id <> st.run_id
      GROUP BY st.run_id, m.name) AS g
JOIN run_metrics v ON v.id = g.last_id WHERE true
{_MERGE}"""

_PG_BORROWED = """INSERT INTO run_metric_summary (run_id, name, value, last_id, points)
SELECT g.run_id, g.name, v.value, g.last_id, g.points
FROM (SELECT c.run_id, m.name, max(m.id) AS last_id, count(*) AS points
      FROM json_to_recordset(CAST({doc} AS json)) AS c(run_id text, name text, from_run text)
      JOIN run_metrics m ON m.run_id = c.from_run AND m.step = c.name
      WHERE m.run_id <> c.run_id
      GROUP BY c.run_id, m.name) AS g
JOIN run_metrics v ON v.id = g.last_id
{merge}"""

PG_BORROWED = _PG_BORROWED.format(doc="%s", merge=_MERGE)
PG_BORROWED_PORTABLE = _PG_BORROWED.format(doc=":doc", merge=_MERGE)


def any_cached(rows: list[dict[str, object]]) -> bool:
    """Whether a batch inserts a cached step run (only then are points borrowed)."""
    return any(r.get("state") == "cached" for r in rows)


def pg_document(rows: list[dict[str, object]]) -> str | None:
    """The cached rows of a batch's step-run inserts as `PG_BORROWED`'s parameter: their
    run, step and source run (None when no row is cached)."""
    picked = []
    for r in rows:
        if r.get("state") != "cached":
            continue
        reason = r.get("reason")
        source = reason.get("from_run") if isinstance(reason, dict) else None
        picked.append({"run_id": r["run_id"], "name": r["name"], "from_run": source})
    return json.dumps(picked) if picked else None
