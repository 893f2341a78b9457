"""`orch artifact RUN STEP [OUTPUT] [--to FILE]`: a step's output, for people.

Without `--to`: one header line (run, step, output, type, size, serializer, hash), then a
preview: a DataFrame's or Series' first rows, a JSON value (cut at `PREVIEW_CHARS`), an
estimator's or array's repr, else only the header and the stored file's path.
With `--to FILE`: `.csv` and `.parquet` write a frame, `.json` a JSON-able value; any
other suffix gets the stored file byte for byte. Every error names the run, step and
output; a file is written whole (temp file, then rename) or not at all.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.api import Run
from orchestrator.artifacts.store import ArtifactRef
from orchestrator.cli.progress import out
from orchestrator.errors import ArtifactError

PREVIEW_ROWS = 10
PREVIEW_CHARS = 4000


def _label(run: Run, step: str, output: str | int | None) -> str:
    which = "" if output is None else f" output {output!r}"
    return f"run {run.run_id} step '{step}'{which}"


def _is_frame(value: Any) -> bool:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False
    return isinstance(value, pd.DataFrame | pd.Series)


def preview(value: Any, ref: ArtifactRef) -> str:
    """A short text of `value` for a terminal."""
    if _is_frame(value):
        shape = f"{value.shape[0]} rows x {value.shape[1]} columns" if value.ndim == 2 else ""
        head = value.head(PREVIEW_ROWS).to_string()
        return f"{shape or f'{len(value)} values'}\n{head}"
    if ref.serializer in ("json", "pydantic"):
        text = json.dumps(
            value.model_dump(mode="json") if hasattr(value, "model_dump") else value,
            indent=2,
            default=str,
        )
        cut = len(text) - PREVIEW_CHARS
        return text if cut <= 0 else text[:PREVIEW_CHARS] + f"\n... ({cut} more characters)"
    if ref.serializer in ("joblib", "npy") or ref.items is not None:
        text = repr(value)
        if ref.items is not None:
            text = f"a list of {len(ref.items)} artifacts: {text}"
        return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + " ..."
    return ""


def show_artifact(run: Run, artifacts: Any, step: str, output: str | int | None) -> None:
    ref = run.output_ref(step, output)
    value = run.output(step, output)
    out.print(
        f"{_label(run, step, output)}: {ref.type}, {ref.size} bytes, "
        f"{ref.serializer}, hash {ref.hash[:16]}",
        highlight=False,
        markup=False,
    )
    text = preview(value, ref)
    if not text:
        where = "inline in the metadata store" if ref.data is not None else artifacts.where(ref)
        text = f"stored at {where}"
    out.print(text, highlight=False, markup=False)


def write_artifact(
    run: Run, artifacts: Any, step: str, output: str | int | None, target: Path
) -> str:
    """Write one output to `target`; returns what was written, for the confirmation line."""
    ref = run.output_ref(step, output)
    suffix = target.suffix.lower()
    label = _label(run, step, output)
    if suffix in (".csv", ".parquet"):
        value = run.output(step, output)
        if not _is_frame(value):
            raise ArtifactError(
                f"{label} is a {ref.type}, not a DataFrame: it cannot be written as {suffix}; "
                f"use .json or the stored file's own suffix ({_suffix(artifacts, ref)})"
            )
        frame = value.to_frame() if value.ndim == 1 else value
        write: Callable[[Path], Any] = (
            (lambda p: frame.to_csv(p)) if suffix == ".csv" else (lambda p: frame.to_parquet(p))
        )
        _atomic(target, write, label)
        return f"{suffix[1:]} of {frame.shape[0]} rows x {frame.shape[1]} columns"
    if ref.items is not None and suffix != ".json":
        raise ArtifactError(
            f"{label} is a list of {len(ref.items)} artifacts, not one stored file; write it "
            "as .json, or write one of its elements (e.g. the child step 'NAME[0]')"
        )
    if suffix == ".json" and ref.serializer not in ("json", "pydantic"):
        value = run.output(step, output)
        try:
            text = json.dumps(value, indent=2, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(
                f"{label} is a {ref.type}, which is not JSON ({exc}); "
                f"write the stored file instead (suffix {_suffix(artifacts, ref)})"
            ) from None
        _atomic(target, lambda p: p.write_text(text + "\n"), label)
        return "JSON"
    if ref.data is not None:  # an inline value: its bytes are the stored file's
        if artifacts.verify(ref) is not None:
            raise ArtifactError(f"{label}: {artifacts.verify(ref)}")
        data = ref.data
        _atomic(target, lambda p: p.write_bytes(data), label)
        return f"the stored {ref.serializer} value"
    try:  # the stored bytes, checked against their hash (downloaded from object storage)
        _atomic(target, lambda p: artifacts.copy_to(ref, p), label)
    except ArtifactError as exc:
        raise ArtifactError(f"{label}: {exc}") from None
    return f"the stored {ref.serializer} file"


def _suffix(artifacts: Any, ref: ArtifactRef) -> str:
    return PurePosixPath(artifacts.where(ref)).suffix


def _atomic(target: Path, write: Callable[[Path], Any], label: str) -> None:
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
    except OSError as exc:
        raise ArtifactError(f"cannot write {target} ({label}): {exc.strerror}") from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except OSError as exc:
        raise ArtifactError(f"cannot write {target} ({label}): {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
