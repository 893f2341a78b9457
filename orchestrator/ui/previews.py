"""A step's input and output artifacts, with a small preview of what they hold.

Reads go through the artifact store, so a preview is of verified bytes: a DataFrame shows
its first rows (at most `ROWS`), a JSON or pydantic artifact its text (cut at `TEXT`
characters). A frame file (Arrow IPC or Parquet) larger than `VERIFY_LIMIT` is not
read whole for a preview: its first rows are read from the file's first batch, and the
page says so. A missing or
corrupt artifact shows the store's own message instead of a preview.
"""

from __future__ import annotations

import json
import math
from typing import Any

from orchestrator.artifacts.store import ArtifactRef
from orchestrator.errors import OrchestratorError

ROWS = 20
COLUMNS = 40
TEXT = 4000
VERIFY_LIMIT = 64 << 20
_FRAMES = ("arrow", "arrow_series", "parquet", "series")


def step_artifacts(
    store: Any, artifacts: Any, step: dict[str, Any], with_preview: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """`{"inputs": [...], "outputs": [...]}`; each `{name, hash, serializer, type, size,
    preview}` (`preview` None when there is nothing to show)."""
    outputs = [{"name": f"output {i}"} | dict(o) for i, o in enumerate(step.get("outputs") or [])]
    inputs_by_hash = dict((step.get("inputs") or {}).items())
    rows = store.artifact_rows(inputs_by_hash.values()) if inputs_by_hash else {}
    inputs = []
    for arg, h in inputs_by_hash.items():
        row = rows.get(h, {})
        inputs.append(
            {
                "name": arg,
                "hash": h,
                "serializer": row.get("serializer"),
                "type": row.get("type"),
                "size": row.get("size"),
                "inline": row.get("inline"),
            }
        )
    for item in (*inputs, *outputs):
        item["preview"] = preview(artifacts, item) if with_preview else None
    return {"inputs": inputs, "outputs": outputs}


def preview(artifacts: Any, item: dict[str, Any]) -> dict[str, Any] | None:
    serializer = item.get("serializer")
    if serializer not in (*_FRAMES, "json", "pydantic"):
        return None
    inline = item.get("inline")
    ref = ArtifactRef(
        item["hash"],
        serializer,
        item.get("type") or "",
        int(item.get("size") or 0),
        data=None if inline is None else inline.encode(),
    )
    try:
        if serializer in ("json", "pydantic"):
            return _text(artifacts, ref)
        return _frame(artifacts, ref)
    except OrchestratorError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # an unreadable file must not take the page down
        return {"error": f"cannot preview artifact {ref.hash[:12]}: {type(exc).__name__}: {exc}"}


def _text(artifacts: Any, ref: ArtifactRef) -> dict[str, Any]:
    if ref.size > VERIFY_LIMIT:
        return {"note": f"{ref.size} bytes: too large to preview here"}
    data = artifacts.read_bytes(ref)
    try:
        text = json.dumps(json.loads(data), indent=2, sort_keys=True, default=str)
    except ValueError:
        text = data.decode("utf-8", "replace")
    cut = len(text) > TEXT
    return {"text": text[:TEXT] + ("\n..." if cut else ""), "truncated": cut}


def _frame(artifacts: Any, ref: ArtifactRef) -> dict[str, Any]:
    note = ""
    if ref.size <= VERIFY_LIMIT:
        frame = artifacts.get(ref)
        if frame.ndim == 1:
            frame = frame.to_frame()
        total_rows = len(frame)
        head = frame.head(ROWS)
    else:
        with artifacts.local_file(ref) as path:  # downloaded first from object storage
            head, total_rows = _first_batch(path, ref.serializer)
        note = "large file: rows read from its first batch, content hash not re-checked"
        if head is None:
            return {"columns": [], "index": [], "rows": [], "shape": [0, 0], "note": note}
    columns = [str(c) for c in head.columns[:COLUMNS]]
    return {
        "columns": columns,
        "index": [_cell(i) for i in head.index],
        "rows": [[_cell(v) for v in row[:COLUMNS]] for row in head.itertuples(index=False)],
        "shape": [int(total_rows), int(head.shape[1])],
        "more_columns": max(0, head.shape[1] - COLUMNS),
        "note": note,
    }


def _first_batch(path: Any, serializer: str) -> tuple[Any, int]:
    """The first rows of a large frame file, and its row count, without reading it all."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    if serializer in ("parquet", "series"):
        with pq.ParquetFile(path) as pf:
            batch = next(pf.iter_batches(batch_size=ROWS), None)
            return (batch.to_pandas() if batch is not None else None), pf.metadata.num_rows
    with pa.memory_map(str(path)) as source:
        reader = ipc.open_file(source)
        rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
        if reader.num_record_batches == 0:
            return None, 0
        return reader.get_batch(0).slice(0, ROWS).to_pandas(), rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
