"""Runs as experiments: their parameters and metrics, filtered, searched and sorted.

`query(store, ...)` returns run rows (as `store.list_runs` gives them) each with
`metrics` (name -> the run's last logged value), `series`, `logged_params` and
`all_params` (the pipeline's parameters, then what steps logged with `log_params`).
Names resolve the same way everywhere (`--sort`, `--filter`, `--columns`): `metrics.NAME`
or `params.NAME` explicitly, else a bare name is a metric if some run has it, else a
parameter. Invariants: a run without the sort key sorts last in either direction;
a metric sort and filters run in SQL over every run of the selection (`store/ranking.py`),
a search or a parameter sort over the newest `SCAN` runs in Python, then `limit` is
applied; bad filters, sort keys and columns raise one `ParamError` naming the option.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from orchestrator.errors import ParamError
from orchestrator.store.ranking import Condition, RankingRepository

SCAN = 10_000
BUILTIN = {"run": "id", "pipeline": "pipeline", "status": "status", "started": "started_at"}
_FILTER = re.compile(r"^\s*([^\s<>=!]+)\s*(>=|<=|!=|==|=|>|<)\s*(.*?)\s*$")

Row = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Filter:
    """`NAME OP VALUE`: `=`/`!=` compare as numbers when both are, else as text."""

    name: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Filter:
        m = _FILTER.match(text)
        if m is None or not m.group(3):
            raise ParamError(
                f"--filter '{text}': expected NAME=VALUE or NAME>NUMBER (e.g. C=1, 'r2>0.8'); "
                "operators: = != > >= < <="
            )
        name, op, value = m.groups()
        if op in (">", ">=", "<", "<=") and _float(value) is None:
            raise ParamError(f"--filter '{text}': '{value}' is not a number for '{op}'")
        return cls(name, "=" if op == "==" else op, value)

    def matches(self, row: Row) -> bool:
        got = value_of(row, self.name)
        if got is None:
            return self.op == "!="
        if self.op in ("=", "!="):
            return _equal(got, self.value) == (self.op == "=")
        number, want = _float(got), _float(self.value)
        if number is None or want is None:
            return False
        return {">": number > want, ">=": number >= want, "<": number < want}.get(
            self.op, number <= want
        )


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _equal(got: Any, text: str) -> bool:
    a, b = _float(got), _float(text)
    if a is not None and b is not None:
        return a == b
    return text_of(got) == text


def text_of(value: Any) -> str:
    """A value as the runs table prints it (text as is, anything else as JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value, sort_keys=True, default=str)


def value_of(row: Row, name: str) -> Any:
    """A metric, parameter or run field of `row` by the name the user typed (or None)."""
    group, _, rest = name.partition(".")
    if group == "metrics" and rest:
        return row["metrics"].get(rest)
    if group == "params" and rest:
        return row["all_params"].get(rest)
    if name in row["metrics"]:
        return row["metrics"][name]
    if name in row["all_params"]:
        return row["all_params"][name]
    if name in BUILTIN:
        return row.get(BUILTIN[name])
    return None


def attach(rows: list[Row], summaries: dict[str, dict[str, Any]]) -> list[Row]:
    """Each run row with its tracked metrics, series and parameters."""
    for r in rows:
        s = summaries.get(r["id"]) or {"metrics": {}, "series": {}, "params": {}}
        r["metrics"], r["series"], r["logged_params"] = s["metrics"], s["series"], s["params"]
        r["all_params"] = {**dict(r.get("params") or {}), **s["params"]}
    return rows


def searched(rows: list[Row], text: str) -> list[Row]:
    """Rows whose id, pipeline, status, trigger or logged parameters (tags) hold `text`."""
    needle = text.lower()

    def hay(r: Row) -> str:
        parts = [r["id"], r["pipeline"], r["status"], json.dumps(r.get("trigger") or {})]
        parts += [f"{k}={text_of(v)}" for k, v in r["logged_params"].items()]
        return " ".join(parts).lower()

    return [r for r in rows if needle in hay(r)]


def _known(rows: list[Row]) -> tuple[list[str], list[str]]:
    metrics = sorted({m for r in rows for m in r["metrics"]})
    params = sorted({p for r in rows for p in r["all_params"]})
    return metrics, params


def check_name(rows: list[Row], name: str, option: str) -> None:
    """One error line when no run of `rows` has `name` (and it is no run field)."""
    if not rows or name in BUILTIN or any(value_of(r, name) is not None for r in rows):
        return
    metrics, params = _known(rows)
    raise ParamError(
        f"{option} '{name}': no run here has a metric or parameter of that name "
        f"(metrics: {', '.join(metrics) or 'none'}; parameters: {', '.join(params) or 'none'})"
    )


def sorted_rows(rows: list[Row], key: str) -> list[Row]:
    """Rows by `key` (`-key`: descending); runs without it last, numbers before text."""
    name, descending = (key[1:], True) if key.startswith("-") else (key, False)
    present = [r for r in rows if value_of(r, name) is not None]
    missing = [r for r in rows if value_of(r, name) is None]

    def order(r: Row) -> tuple[int, Any]:
        v = value_of(r, name)
        number = _float(v)
        return (0, number) if number is not None else (1, text_of(v))

    return sorted(present, key=order, reverse=descending) + missing


def columns(rows: list[Row], spec: str | None, metrics: list[str]) -> list[str]:
    """The extra columns of the runs table, as `metrics.NAME` / `params.NAME` names.

    `spec` is a comma list of `params`, `metrics` (every one the runs have, or only
    `metrics` when given) and single names; without `spec`, the `metrics` given."""
    known_metrics, known_params = _known(rows)
    out: list[str] = []
    for part in [p.strip() for p in (spec or "").split(",") if p.strip()] or (
        ["metrics"] if metrics else []
    ):
        if part == "params":
            out += [f"params.{p}" for p in known_params]
        elif part == "metrics":
            out += [f"metrics.{m}" for m in (metrics or known_metrics)]
        else:
            check_name(rows, part, "--columns")
            group = "metrics" if value_of_group(rows, part) == "metrics" else "params"
            out.append(part if "." in part else f"{group}.{part}")
    return list(dict.fromkeys(out))


def value_of_group(rows: list[Row], name: str) -> str:
    return "metrics" if any(name in r["metrics"] for r in rows) else "params"


def query(
    store: Any,
    *,
    pipeline: str | None = None,
    status: str | None = None,
    limit: int = 20,
    sort: str | None = None,
    filters: list[str] | None = None,
    search: str | None = None,
) -> list[Row]:
    """Run rows with their metrics and parameters, filtered, searched, sorted, limited."""
    parsed = [Filter.parse(f) for f in filters or []]
    if (sort or parsed) and not search:
        ranked = ranked_rows(store, parsed, sort, pipeline, status, limit)
        if ranked is not None:
            return ranked
    narrowing = bool(sort or parsed or search)
    rows = store.list_runs(SCAN if narrowing else limit, pipeline, status)
    ids = [r["id"] for r in rows]
    if narrowing:  # first pass: only the metrics the filters and the sort name
        names = [f.name for f in parsed] + ([sort.removeprefix("-")] if sort else [])
        wanted = {n.removeprefix("metrics.") for n in names}
        how = (parsed, sort, search)
        try:
            picked = narrowed(attach(rows, store.tracking.summaries(ids, metrics=wanted)), *how)
        except ParamError:  # say it naming every metric there is
            picked = narrowed(attach(rows, store.tracking.summaries(ids)), *how)
        rows = picked[:limit]
        ids = [r["id"] for r in rows]
    return attach(rows, store.tracking.summaries(ids))[:limit]


def ranked_rows(
    store: Any,
    parsed: list[Filter],
    sort: str | None,
    pipeline: str | None,
    status: str | None,
    limit: int,
) -> list[Row] | None:
    """The runs table sorted and filtered in SQL over every run of the selection, or None
    when a name is no metric or parameter the store knows (or the sort key is no metric):
    then the rows are narrowed in Python, which says what is wrong."""
    repo = RankingRepository(store.db)
    where = (pipeline, status)
    key = sort.removeprefix("-") if sort else None
    metric = _metric_name(repo, key, where) if key else None
    if key and metric is None:
        return None
    conditions = [_condition(repo, f, where) for f in parsed]
    if any(c is None for c in conditions):
        return None
    how = {"sort": metric, "descending": bool(sort and sort.startswith("-"))}
    how |= {"conditions": conditions, "pipeline": pipeline, "status": status}
    # a page of `limit` first (SQL is exact but for some parameter values), then larger
    batch, offset, out = limit, 0, []
    while len(out) < limit:
        ids = repo.ranked(**how, limit=batch, offset=offset)
        rows = attach(repo.runs(ids), store.tracking.summaries(ids))
        out += [r for r in rows if all(f.matches(r) for f in parsed)]
        if len(ids) < batch:
            break
        offset, batch = offset + batch, min(4 * batch, 1000)
    store.runs.refresh_stale(out[:limit])
    return out[:limit]


def _metric_name(repo: RankingRepository, name: str, where: tuple[Any, Any]) -> str | None:
    group, _, rest = name.partition(".")
    if group == "params" and rest:
        return None
    bare = rest if group == "metrics" and rest else name
    return bare if repo.metric_exists(bare, *where) else None


def _condition(repo: RankingRepository, f: Filter, where: tuple[Any, Any]) -> Condition | None:
    """`f` as SQL sees it, or None when its name is unknown (or a run field)."""
    group, _, rest = f.name.partition(".")
    number = _float(f.value)
    if group in ("metrics", "params") and rest:
        kind, name = group.removesuffix("s"), rest
    elif repo.metric_exists(f.name, *where):
        kind, name = "metric", f.name
    else:
        kind, name = "param", f.name
    if f.name in BUILTIN and kind == "param" and group not in ("metrics", "params"):
        return None
    exists = repo.metric_exists if kind == "metric" else repo.param_exists
    if not exists(name, *where):
        return None
    return Condition(name, kind, f.op, f.value, number)


def narrowed(
    rows: list[Row], parsed: list[Filter], sort: str | None, search: str | None
) -> list[Row]:
    """`rows` that pass every filter and the search, sorted by `sort`."""
    for f in parsed:
        check_name(rows, f.name, "--filter")
    if sort:
        check_name(rows, sort.removeprefix("-"), "--sort")
    for f in parsed:
        rows = [r for r in rows if f.matches(r)]
    if search:
        rows = searched(rows, search)
    return sorted_rows(rows, sort) if sort else rows
