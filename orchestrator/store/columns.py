"""The columns of the tables the engine writes, as plain names: what the raw SQLite path
(store/fastpath.py) and the batches (store/batch.py) need, importable without SQLAlchemy.

`store/schema.py` is the definition; these lists repeat it (a unit test holds them equal),
so that a cached run on a SQLite store at the schema head never loads SQLAlchemy.
`JSON_COLS` and `TIME_COLS` are the names of the columns, in any table, that hold JSON
text and naive-UTC times; `CHUNK` is how many keys or steps one many-row read takes.
"""

from __future__ import annotations

TABLE_COLS: dict[str, tuple[str, ...]] = {
    "runs": (
        "id", "pipeline", "target", "status", "params", "executor", "started_at",
        "ended_at", "host", "pid", "resumed_from", "trigger", "error", "cancel_requested_at",
    ),
    "step_runs": (
        "id", "run_id", "name", "kind", "state", "attempts", "started_at", "ended_at",
        "duration", "cache_key", "reason", "params", "inputs", "outputs", "error", "log",
    ),
    "attempts": (
        "id", "run_id", "step", "attempt", "state", "started_at", "ended_at", "duration",
        "error", "traceback", "log",
    ),
    "artifacts": ("hash", "serializer", "type", "size", "run_id", "step", "created_at", "inline"),
    "cache_entries": (
        "cache_key", "pipeline", "step", "outputs", "code", "params", "inputs", "run_id",
        "created_at",
    ),
    "pipelines": ("name", "ref", "updated_at"),
}  # fmt: skip

JSON_COLS = frozenset(
    {"args", "code", "data", "inputs", "metrics", "outputs", "packages", "params", "reason"}
    | {"trigger"}
)
TIME_COLS = frozenset(
    {"cancel_requested_at", "claimed_at", "created_at", "cursor", "ended_at", "handled_at"}
    | {"heartbeat_at", "logged_at", "started_at", "updated_at"}
)

STEP_COLS = tuple(c for c in TABLE_COLS["step_runs"] if c != "id")
ATTEMPT_COLS = tuple(c for c in TABLE_COLS["attempts"] if c != "id")
UPDATE_COLS = (
    "state",
    "attempts",
    "ended_at",
    "duration",
    "reason",
    "outputs",
    "error",
    "log",
    "cache_key",
    "inputs",
)
ATTEMPT_UPDATE_COLS = ("state", "ended_at", "duration", "error", "traceback", "log")

CHUNK = 500  # keys or steps per statement of a many-row read
