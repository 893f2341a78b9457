"""Artifact store: content-addressed files, one serializer per type, verified reads.

Layout under the root (works on any shared filesystem): `ab/abcdef....<ext>` where the
name is the xxh3-128 hash of the serialized bytes. Invariants:

* a file is written to a temporary name in the same folder and renamed into place, so a
  reader (or a crash) never sees half a file;
* the content hash is computed once, from the bytes being written;
* a read re-hashes the bytes and raises `ArtifactError` on a missing or corrupt file,
  so a damaged artifact is never silently used;
* a type with no serializer is an error, never a silent pickle: pickling happens only
  when the step asks for it with `hints={"serializer": "pickle"}`;
* a *list ref* (serializer `list`) is no file: it names other artifacts in order (the
  outputs given to a `list[T]` input, or the children's outputs of a mapped step), and
  its hash is the hash of their hashes; it loads as a list (a tuple when `type` says
  so) and is intact when every item is;
* a value comes back with the type it went in with (`tuple` stays `tuple`, int dict keys
  stay int, numpy scalars keep their dtype, a RangeIndex stays a RangeIndex): JSON goes
  through `tagged`, Parquet keeps index frequency, RangeIndex columns and object columns
  in its schema metadata, and a value whose type a serializer would still change (a
  DataFrame whose first rows do not come back equal, a pydantic model with looser field
  types than its values) is refused with one error, never stored changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.artifacts import tagged
from orchestrator.artifacts.frames import df_dumps, df_loads, series_dumps, series_loads
from orchestrator.cache.hashing import hash_bytes, hash_file
from orchestrator.cache.identity import find_module, module_identity
from orchestrator.errors import ArtifactError


@dataclasses.dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A stored artifact: its content hash, how it was serialized, its type and size."""

    hash: str
    serializer: str
    type: str
    size: int
    items: tuple[ArtifactRef, ...] | None = None  # a list ref's artifacts, in order

    @classmethod
    def collect(
        cls, items: list[ArtifactRef] | tuple[ArtifactRef, ...], *, as_tuple: bool = False
    ) -> ArtifactRef:
        """The list ref of `items` (see the module docstring)."""
        items = tuple(items)
        kind = "builtins:tuple" if as_tuple else "builtins:list"
        key = hash_bytes(("list\0" + "\0".join(i.hash for i in items)).encode())
        return cls(key, LIST, kind, sum(i.size for i in items), items)

    def files(self) -> list[ArtifactRef]:
        """The stored artifacts this ref stands for: itself, or a list ref's items."""
        if self.items is None:
            return [self]
        return [f for i in self.items for f in i.files()]

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "hash": self.hash,
            "serializer": self.serializer,
            "type": self.type,
            "size": self.size,
        }
        if self.items is not None:
            d["items"] = [i.to_json() for i in self.items]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ArtifactRef:
        items = d.get("items")
        return cls(
            d["hash"],
            d["serializer"],
            d["type"],
            int(d["size"]),
            None if items is None else tuple(cls.from_json(i) for i in items),
        )


LIST = "list"


def file_hashes(output: dict[str, Any]) -> list[str]:
    """The hashes of the stored files a recorded output (`ArtifactRef.to_json`) names."""
    items = output.get("items")
    if items is None:
        return [output["hash"]]
    return [h for i in items for h in file_hashes(i)]


def _type_path(value: Any) -> str:
    t = type(value)
    return f"{module_identity(t.__module__)}:{t.__qualname__}"


def _import_type(path: str) -> Any:
    mod, _, qual = path.partition(":")
    obj: Any = find_module(mod)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


# -- serializers: (name, ext, dumps(value) -> bytes, loads(bytes, type_path) -> value) --


def _npy_dumps(value: Any) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=False)
    return buf.getvalue()


def _npy_loads(data: bytes, _type: str) -> Any:
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)


def _joblib_dumps(value: Any) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(value, buf)
    return buf.getvalue()


def _joblib_loads(data: bytes, _type: str) -> Any:
    import joblib

    return joblib.load(io.BytesIO(data))


def _pydantic_dumps(value: Any) -> bytes:
    """Python-mode fields as tagged JSON (keeps NaN, tuples in `Any`, ...), else pydantic's
    JSON; either way refused when the model would not validate back to an equal one."""
    fields = value.model_dump(mode="python", round_trip=True)
    try:
        data = tagged.dumps({"$model": fields})
    except TypeError:
        data = value.model_dump_json(round_trip=True).encode()
    try:
        back = _pydantic_loads(data, "", type(value))
        same = _model_text(back) == _model_text(value)
    except Exception as exc:  # noqa: BLE001 - reported as the reason below
        same, why = False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
    else:
        why = "a field's type is looser than its value's"
    if not same:
        raise ArtifactError(
            f"a {_type_path(value)} would not come back the same from JSON ({why}); give its "
            "fields exact types, or store it with @step(hints={'serializer': 'pickle'})"
        )
    return data


def _model_text(model: Any) -> bytes | Any:
    try:
        return tagged.dumps(model.model_dump(mode="python"))
    except TypeError:
        return model


def _pydantic_loads(data: bytes, type_: str, cls: Any = None) -> Any:
    cls = cls or _import_type(type_)
    doc = tagged.loads(data)
    if isinstance(doc, dict) and doc.keys() == {"$model"}:
        return cls.model_validate(doc["$model"])
    return cls.model_validate_json(data)


def _json_dumps(value: Any) -> bytes:
    return tagged.dumps(value)


def _json_loads(data: bytes, _type: str) -> Any:
    return tagged.loads(data)


SERIALIZERS: dict[str, tuple[str, Any, Any]] = {
    "parquet": (".parquet", df_dumps, df_loads),
    "series": (".parquet", series_dumps, series_loads),
    "npy": (".npy", _npy_dumps, _npy_loads),
    "joblib": (".joblib", _joblib_dumps, _joblib_loads),
    "pydantic": (".json", _pydantic_dumps, _pydantic_loads),
    "json": (".json", _json_dumps, _json_loads),
    "pickle": (".pkl", lambda v: pickle.dumps(v, protocol=5), lambda d, _t: pickle.loads(d)),
}


def _json_problem(value: Any) -> str | None:
    """None when tagged JSON gives `value` back unchanged, else what it cannot carry."""
    try:
        tagged.encode(value)
    except TypeError as exc:
        return str(exc)
    return None


def choose_serializer(value: Any, requested: str | None = None) -> str:
    """The serializer for a value: by its type, or the one the step asked for."""
    if requested:
        if requested not in SERIALIZERS:
            raise ArtifactError(
                f"unknown serializer '{requested}'; known: {', '.join(SERIALIZERS)}"
            )
        return requested
    mod = type(value).__module__.split(".")[0]
    if mod == "pandas":
        import pandas as pd

        if type(value) is pd.DataFrame:
            return "parquet"
        if type(value) is pd.Series:
            return "series"
    if mod == "numpy":
        import numpy as np

        if type(value) is np.ndarray and not value.dtype.hasobject:
            return "npy"
    if hasattr(value, "model_dump_json") and hasattr(type(value), "model_validate_json"):
        return "pydantic"
    problem = _json_problem(value)
    if problem is None:
        return "json"
    if _is_estimator(value):
        return "joblib"
    inside = (
        ""
        if problem == f"a {type(value).__module__}.{type(value).__qualname__}"
        else (f" (it holds {problem})")
    )
    raise ArtifactError(
        f"no serializer for a value of type {_type_path(value)}{inside}; return a DataFrame, "
        "numpy array, "
        "scikit-learn estimator, pydantic model or JSON-able value, or ask for pickling with "
        "@step(hints={'serializer': 'pickle'})"
    )


def _is_estimator(value: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - sklearn is a dependency
        return False
    return isinstance(value, BaseEstimator)


def _touch(path: Path) -> None:
    """Content written again is as young as new content: `cache gc` keeps it its grace."""
    with contextlib.suppress(OSError):  # a shared file we may read but not touch
        os.utime(path)


def _file_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()  # what open() would give a new file


class ArtifactStore:
    """Content-addressed files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._dirs: set[str] = set()

    def path(self, ref: ArtifactRef) -> Path:
        if ref.items is not None:
            raise ArtifactError(f"artifact {ref.hash[:12]} is a list of artifacts, not a file")
        return self.root / ref.hash[:2] / (ref.hash + SERIALIZERS[ref.serializer][0])

    def put(self, value: Any, serializer: str | None = None) -> ArtifactRef:
        ref, data = self.encode(value, serializer)
        self.write(ref, data)
        return ref

    def write(self, ref: ArtifactRef, data: bytes) -> None:
        """Store `data`, encoded by `encode` as `ref`."""
        self._write(self.path(ref), data)

    def encode(self, value: Any, serializer: str | None = None) -> tuple[ArtifactRef, bytes]:
        """The reference and bytes `value` is stored as; nothing is written."""
        name = choose_serializer(value, serializer)
        try:
            data = SERIALIZERS[name][1](value)
        except ArtifactError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"cannot serialize {_type_path(value)} with {name}: {exc}"
            ) from None
        return ArtifactRef(hash_bytes(data), name, _type_path(value), len(data)), data

    def _write(self, path: Path, data: bytes | memoryview) -> None:
        folder = path.parent
        key = folder.name
        if key not in self._dirs:
            folder.mkdir(parents=True, exist_ok=True)
            self._dirs.add(key)
        try:
            if path.stat().st_size == len(data) and hash_file(path) == path.name.split(".")[0]:
                _touch(path)
                return  # the same content is already stored, intact
        except FileNotFoundError:
            pass
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            os.fchmod(fd, _FILE_MODE)  # mkstemp's 0600 would hide it from a container's user
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def adopt(self, src: Path, ref: ArtifactRef) -> None:
        """Move a file written elsewhere (a container's scratch folder) into the store,
        after checking it holds exactly the content its reference names."""
        try:
            ok = hash_file(src) == ref.hash and src.stat().st_size == ref.size
        except FileNotFoundError:
            raise ArtifactError(f"artifact {ref.hash[:12]} was not written: {src}") from None
        if not ok:
            raise ArtifactError(
                f"artifact {ref.hash[:12]} written at {src} does not match its hash"
            )
        dest = self.path(ref)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.verify(ref) is None:
            _touch(dest)
            return  # already stored, intact
        tmp = dest.parent / f".tmp-adopt-{os.getpid()}-{ref.hash}"
        shutil.copyfile(src, tmp)  # the scratch folder may be on another filesystem
        os.replace(tmp, dest)

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        path = self.path(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"artifact {ref.hash[:12]} is missing: {path}") from None
        if hash_bytes(data) != ref.hash:
            raise ArtifactError(
                f"artifact {ref.hash[:12]} is corrupt (content hash differs): {path}"
            )
        return data

    def get(self, ref: ArtifactRef) -> Any:
        if ref.items is not None:
            values = [self.get(i) for i in ref.items]
            return tuple(values) if ref.type == "builtins:tuple" else values
        data = self.read_bytes(ref)
        try:
            return SERIALIZERS[ref.serializer][2](data, ref.type)
        except Exception as exc:
            raise ArtifactError(
                f"cannot load artifact {ref.hash[:12]} ({ref.type}): {exc}"
            ) from None

    def verify(self, ref: ArtifactRef) -> str | None:
        """None when the file is present and intact, else the reason it is not."""
        if ref.items is not None:
            return next((p for i in ref.items if (p := self.verify(i)) is not None), None)
        path = self.path(ref)
        try:
            if ref.size < (1 << 20):
                ok = hash_bytes(path.read_bytes()) == ref.hash
            else:
                ok = hash_file(path) == ref.hash
        except FileNotFoundError:
            return f"artifact {ref.hash[:12]} is missing: {path}"
        return None if ok else f"artifact {ref.hash[:12]} is corrupt (content hash differs): {path}"

    def all_files(self) -> list[Path]:
        if not self.root.exists():
            return []
        return [p for p in self.root.glob("??/*") if p.is_file()]
