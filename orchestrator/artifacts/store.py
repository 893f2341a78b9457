"""Artifact store: content-addressed files, one serializer per type, verified reads.

Layout under the root (works on any shared filesystem): `ab/abcdef....<ext>` where the
name is the xxh3-128 hash of the serialized bytes. Frames, Series and Arrow tables are
Arrow IPC files (`.arrow`), numpy arrays `.npy`; both are read memory-mapped. Invariants:

* a value is serialized straight into a temporary file under the root and renamed into
  place, so a reader (or a crash) never sees half a file;
* the content hash is computed once, from the bytes as they are written (one pass, no
  in-memory copy of the serialized value);
* a read re-hashes the bytes and raises `ArtifactError` on a missing or corrupt file,
  so a damaged artifact is never silently used; a large file is hashed and decoded
  through one private (copy-on-write) mapping, so an array may be changed in place;
* a failed write (disk full, an unwritable folder) raises one `ArtifactError` naming the
  folder and leaves no file behind;
* a type with no serializer is an error, never a silent pickle: pickling happens only
  when the step asks for it with `hints={"serializer": "pickle"}`;
* a *list ref* (serializer `list`) is no file: it names other artifacts in order (the
  outputs given to a `list[T]` input, or the children's outputs of a mapped step), and
  its hash is the hash of their hashes; it loads as a list (a tuple when `type` says
  so) and is intact when every item is;
* a value comes back with the type it went in with (`tuple` stays `tuple`, int dict keys
  stay int, numpy scalars keep their dtype, a RangeIndex stays a RangeIndex): JSON goes
  through `tagged`, frames keep index frequency, RangeIndex columns and object columns
  in their schema metadata, and a value whose type a serializer would still change (a
  DataFrame whose first rows do not come back equal, a pydantic model with looser field
  types than its values) is refused with one error, never stored changed;
* every serializer name ever written stays readable (`parquet` and `series` artifacts
  from before Arrow IPC was the default, too);
* a small output is *inline* (`inline_max`, by default `INLINE_LIMIT` as measured; a
  store made with `inline_max=0` writes every value as a file): a JSON value whose
  bytes are at most that is no file; its ref carries the bytes (`data`, recorded as
  `inline` in the ref's JSON), so it lives in the metadata store's rows and travels
  with the ref to and from other processes, containers and Dask workers. Its hash is
  the same as the file's would be, and it is checked on every read as a file's is.
  `INLINE_LIMIT` is set by measurement (bench/inline.py): below it a file costs ~100 us
  to create, two rows with the value a few; above it the rows (a mapped step's list
  holds every child's) grow too large.

`ArtifactStore` is the local (or shared-filesystem) store; `objects.ObjectArtifactStore`
keeps the same objects in S3-compatible object storage and overrides only the I/O
(`_commit`, `_read`, `verify`, `adopt`, the listing gc uses); `location.open_artifacts`
turns an `ORCH_ARTIFACTS` value into either. A store is named by its `location` (a folder
path or an `s3://` URL), which is what a worker in another process is given.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import io
import mmap
import os
import pickle
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import xxhash

from orchestrator.artifacts import frames, tagged
from orchestrator.cache.hashing import hash_bytes, hash_file
from orchestrator.cache.identity import find_module, module_identity
from orchestrator.errors import ArtifactError

Dumper = Callable[[Any, IO[bytes]], None]
Loader = Callable[[bytes | memoryview, str], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A stored artifact: its content hash, how it was serialized, its type and size."""

    hash: str
    serializer: str
    type: str
    size: int
    items: tuple[ArtifactRef, ...] | None = None  # a list ref's artifacts, in order
    data: bytes | None = None  # an inline artifact's bytes (see the module docstring)

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
        if self.data is not None:
            d["inline"] = self.data.decode()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ArtifactRef:
        items, inline = d.get("items"), d.get("inline")
        return cls(
            d["hash"],
            d["serializer"],
            d["type"],
            int(d["size"]),
            None if items is None else tuple(cls.from_json(i) for i in items),
            None if inline is None else inline.encode(),
        )


LIST = "list"
INLINE_LIMIT = 1024  # bytes: the measured threshold (bench/inline.py)
INLINE_MAX = INLINE_LIMIT  # the default; a store made with `inline_max=0` writes every file
INLINE_SERIALIZERS = frozenset({"json"})  # text: its bytes are their own JSON string


def file_hashes(output: dict[str, Any]) -> list[str]:
    """The hashes of the stored artifacts (files or inline) a recorded output
    (`ArtifactRef.to_json`) names."""
    items = output.get("items")
    if items is None:
        return [output["hash"]]
    return [h for i in items for h in file_hashes(i)]


_BUILTIN_TYPES = {t: f"builtins:{t.__qualname__}" for t in (int, float, str, bool, list, dict)}


def _type_path(value: Any) -> str:
    t = type(value)
    known = _BUILTIN_TYPES.get(t)
    if known is not None:  # the common small values (a mapped step's elements)
        return known
    return f"{module_identity(t.__module__)}:{t.__qualname__}"


def _import_type(path: str) -> Any:
    mod, _, qual = path.partition(":")
    obj: Any = find_module(mod)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


# -- serializers: name -> (ext, dump(value, file), load(bytes-like, type_path) -> value) --


def _npy_dump(value: Any, fp: IO[bytes]) -> None:
    import numpy as np

    np.lib.format.write_array(fp, value, allow_pickle=False)  # the bytes np.save writes


def _npy_loads(data: bytes | memoryview, _type: str) -> Any:
    """An array over `data` itself (no copy; writable when `data` is a private mapping)."""
    import numpy as np

    fmt = np.lib.format
    head = io.BytesIO(data[: min(len(data), 1 << 16)])
    version = fmt.read_magic(head)
    read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, fortran, dtype = read_header(head)
    count = int(np.prod(shape, dtype=np.int64))
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=head.tell())
    return flat.reshape(shape, order="F" if fortran else "C")


def _joblib_dumps(value: Any) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(value, buf)
    return buf.getvalue()


def _joblib_loads(data: bytes | memoryview, _type: str) -> Any:
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


def _pydantic_loads(data: bytes | memoryview, type_: str, cls: Any = None) -> Any:
    cls = cls or _import_type(type_)
    doc = tagged.loads(data)
    if isinstance(doc, dict) and doc.keys() == {"$model"}:
        return cls.model_validate(doc["$model"])
    return cls.model_validate_json(data)


def _json_dumps(value: Any) -> bytes:
    return tagged.dumps(value)


def _json_loads(data: bytes | memoryview, _type: str) -> Any:
    return tagged.loads(data)


def _of_bytes(dumps: Callable[[Any], bytes]) -> Callable[[Any, IO[bytes]], None]:
    """A serializer that builds small values' bytes in memory, as a file writer."""

    def dump(value: Any, fp: IO[bytes]) -> None:
        fp.write(dumps(value))

    return dump


def _pickle_loads(data: bytes | memoryview, _type: str) -> Any:
    return pickle.loads(data)


SERIALIZERS: dict[str, tuple[str, Dumper, Loader]] = {
    "arrow": (".arrow", frames.arrow_dump, frames.arrow_load),
    "arrow_series": (".arrow", frames.arrow_series_dump, frames.arrow_series_load),
    "arrow_table": (".arrow", frames.table_dump, frames.table_load),
    "parquet": (".parquet", frames.df_dump, frames.df_loads),
    "series": (".parquet", frames.series_dump, frames.series_loads),
    "npy": (".npy", _npy_dump, _npy_loads),
    "joblib": (".joblib", _of_bytes(_joblib_dumps), _joblib_loads),
    "pydantic": (".json", _of_bytes(_pydantic_dumps), _pydantic_loads),
    "json": (".json", _of_bytes(_json_dumps), _json_loads),
    "pickle": (".pkl", _of_bytes(lambda v: pickle.dumps(v, protocol=5)), _pickle_loads),
}
MAPPED = frozenset({"arrow", "arrow_series", "arrow_table", "npy"})  # read memory-mapped
_MAP_FROM = 1 << 20  # bytes: smaller files are read into memory, larger ones mapped


def _json_problem(value: Any) -> str | None:
    """None when tagged JSON gives `value` back unchanged, else what it cannot carry."""
    try:
        tagged.encode(value)
    except TypeError as exc:
        return str(exc)
    return None


_PLAIN_JSON = frozenset({type(None), bool, int, float, str})


def choose_serializer(value: Any, requested: str | None = None) -> str:
    """The serializer for a value: by its type, or the one the step asked for."""
    if requested:
        if requested not in SERIALIZERS:
            raise ArtifactError(
                f"unknown serializer '{requested}'; known: {', '.join(SERIALIZERS)}"
            )
        return _SERIES_FORMAT.get(requested, requested) if _is_series(value) else requested
    if type(value) in _PLAIN_JSON:  # the common small values: JSON, no further checks
        return "json"
    mod = type(value).__module__.split(".")[0]
    if mod == "pandas":
        import pandas as pd

        if type(value) is pd.DataFrame:
            return "arrow"
        if type(value) is pd.Series:
            return "arrow_series"
    if mod == "pyarrow":
        import pyarrow as pa

        if type(value) is pa.Table:
            return "arrow_table"
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


_SERIES_FORMAT = {"parquet": "series", "arrow": "arrow_series"}  # a frame format, asked of a Series


def _is_series(value: Any) -> bool:
    if type(value).__module__.split(".")[0] != "pandas":
        return False
    import pandas as pd

    return type(value) is pd.Series


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


def _mapped_hash(path: Path) -> str:
    """The content hash of a large regular file, hashed through a read-only mapping (no
    copy into this process); anything else (a FIFO, a folder) goes to `hash_file`."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return hash_file(path)
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
            return hash_bytes(mapped)  # type: ignore[arg-type]
    finally:
        os.close(fd)


def _small_file(path: str, size: int) -> bytes:
    """The bytes of a file expected to hold `size` bytes: one read (of one byte more,
    so a longer file is read whole as well), no buffered file object."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        data = os.read(fd, size + 1)
        if len(data) > size:  # longer than recorded: the rest too
            chunks = [data]
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data


class _Discard:
    """A sink that drops what is written to it (hashing bytes that are not kept)."""

    def write(self, b: Any) -> int:
        return len(memoryview(b).cast("B"))


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    """A value hashed ahead of its write (`ArtifactStore.prepare`): its reference and the
    Arrow table whose IPC bytes it names."""

    ref: ArtifactRef
    table: Any
    keep: Any = None  # what the table's buffers belong to (a frame's shallow copy)


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes each chunk on its way to disk: one pass, no copy."""

    def __init__(self, f: IO[bytes]) -> None:
        super().__init__()
        self._f, self._h, self.size = f, xxhash.xxh3_128(), 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._h.update(b)
        n = len(memoryview(b).cast("B"))
        self._f.write(b)
        self.size += n
        return n

    def tell(self) -> int:
        return self.size

    def hexdigest(self) -> str:
        return str(self._h.hexdigest())


@dataclasses.dataclass(frozen=True, slots=True)
class StoredObject:
    """One stored artifact (or a torn write's leftover) as garbage collection sees it."""

    name: str  # a file's path, or an object's URL
    hash: str
    size: int
    mtime: float  # seconds since the epoch: last written (or, for a torn write, begun)
    upload: str | None = None  # an unfinished multipart upload's id


class ArtifactStore:
    """Content-addressed files under `root`."""

    is_local = True

    def __init__(self, root: Path, inline_max: int = INLINE_MAX) -> None:
        self.root = Path(root)
        self.location = str(self.root)  # what a worker in another process opens
        self.inline_max = inline_max  # 0: every artifact is a file
        self._root = str(self.root)  # for paths built without pathlib (the hot reads)
        self._dirs: set[str] = set()
        self.loads = 0  # values decoded from files (a value passed in memory is not one)

    def path(self, ref: ArtifactRef) -> Path:
        if ref.items is not None:
            raise ArtifactError(f"artifact {ref.hash[:12]} is a list of artifacts, not a file")
        if ref.data is not None:
            raise ArtifactError(
                f"artifact {ref.hash[:12]} is stored inline in the metadata store, not as a file"
            )
        return self.root / ref.hash[:2] / (ref.hash + SERIALIZERS[ref.serializer][0])

    def _file(self, ref: ArtifactRef) -> str:
        """`path(ref)` as a string, built without pathlib (a cached step checks each
        of its artifacts: this is on the hot path)."""
        h = ref.hash
        return f"{self._root}{os.sep}{h[:2]}{os.sep}{h}{SERIALIZERS[ref.serializer][0]}"

    def put(self, value: Any, serializer: str | None = None, *, inline: bool = True) -> ArtifactRef:
        """Serialize `value` straight into a temporary file, hashing the bytes as they
        are written, then rename it to its content address; a small JSON value is
        returned inline instead, unless `inline` is False (a value found by its hash
        alone, as a tracked artifact is, needs its file)."""
        name = choose_serializer(value, serializer)
        if inline and name in INLINE_SERIALIZERS and self.inline_max:
            ref, data = self.encode(value, name)
            small = self.inlined(ref, data)
            if small.data is None:
                self.write(ref, data)
            return small
        return self._store_file(
            _type_path(value),
            lambda sink: self._dump(name, value, sink),
            lambda sink: ArtifactRef(sink.hexdigest(), name, _type_path(value), sink.size),
        )

    def prepare(self, value: Any, serializer: str | None = None) -> Prepared | None:
        """`value`'s reference before anything is written, when its serializer writes an
        Arrow table (a frame, a Series, a table): the table is made and checked once and
        its bytes hashed without being kept (no copy of the data), so the value's hash is
        known while `put_prepared` writes it; None for any other value.

        A frame's table is made from a shallow copy, kept with it until written: under
        pandas' copy-on-write, a change made in place to `value` meanwhile (by a step
        that reads it) copies the data first, so the bytes written are those hashed.
        Without copy-on-write (pandas 2 with it off) no frame is prepared."""
        name = choose_serializer(value, serializer)
        keep = value
        if name in ("arrow", "arrow_series"):
            if not frames.copy_on_write():
                return None  # a change made in place could reach the bytes being written
            keep = value.copy(deep=False)
        try:
            table = frames.ipc_table(name, keep)
            if table is None:
                return None
            sink = _HashingFile(_Discard())
            frames.write_table(table, sink)
        except ArtifactError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"cannot serialize {_type_path(value)} with {name}: {exc}"
            ) from None
        ref = ArtifactRef(sink.hexdigest(), name, _type_path(value), sink.size)
        return Prepared(ref, table, keep)

    def put_prepared(self, prepared: Prepared) -> ArtifactRef:
        """Store a value `prepare` hashed: its table written straight into a temporary
        file, hashed again on the way and renamed into place only if the bytes are the
        ones its hash names (readers may already know the value by that hash)."""
        ref = prepared.ref

        def written(sink: _HashingFile) -> ArtifactRef:
            if sink.hexdigest() != ref.hash:
                raise ArtifactError(
                    f"a {ref.type} artifact came out different from the bytes hashed before "
                    f"its write ({ref.hash[:12]}); it was not stored"
                )
            return ref

        return self._store_file(
            ref.type,
            lambda sink: self._dump(ref.serializer, prepared.table, sink, frames.write_table),
            written,
        )

    def _store_file(
        self,
        type_path: str,
        dump: Callable[[_HashingFile], None],
        ref_of: Callable[[_HashingFile], ArtifactRef],
    ) -> ArtifactRef:
        """`dump` into a new temporary file through a hashing sink, then rename it to the
        content address of `ref_of(sink)`; no temporary file is left behind."""
        tmp = None
        try:
            fd, tmp = self._temp()
            with open(fd, "wb") as f:
                sink = _HashingFile(f)
                dump(sink)
            ref = ref_of(sink)
            self._commit(tmp, ref)
            tmp = None
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise ArtifactError(
                f"cannot write a {type_path} artifact under {self.location}: {why}"
            ) from None
        finally:
            if tmp is not None:
                _unlink(tmp)
        return ref

    def encode(self, value: Any, serializer: str | None = None) -> tuple[ArtifactRef, bytes]:
        """The reference and bytes `value` would be stored as; nothing is written (for
        small values that may never need a file: a mapped step's elements)."""
        name = choose_serializer(value, serializer)
        if name == "json":  # built in memory anyway: hashed at once
            try:
                data = _json_dumps(value)
            except Exception as exc:
                raise ArtifactError(
                    f"cannot serialize {_type_path(value)} with {name}: {exc}"
                ) from None
            return ArtifactRef(hash_bytes(data), name, _type_path(value), len(data)), data
        buf = io.BytesIO()
        sink = _HashingFile(buf)
        self._dump(name, value, sink)
        return ArtifactRef(sink.hexdigest(), name, _type_path(value), sink.size), buf.getvalue()

    def inlined(self, ref: ArtifactRef, data: bytes) -> ArtifactRef:
        """`ref` carrying `data` when it is small enough to be inline, else `ref`."""
        if ref.serializer in INLINE_SERIALIZERS and len(data) <= self.inline_max:
            return ArtifactRef(ref.hash, ref.serializer, ref.type, ref.size, ref.items, data)
        return ref

    def write(self, ref: ArtifactRef, data: bytes) -> None:
        """Store `data`, encoded by `encode` as `ref`."""
        tmp = None
        try:
            fd, tmp = self._temp()
            with open(fd, "wb") as f:
                f.write(data)
            self._commit(tmp, ref)
            tmp = None
        except OSError as exc:
            raise ArtifactError(
                f"cannot write artifact {ref.hash[:12]} under {self.location}: "
                f"{exc.strerror or exc}"
            ) from None
        finally:
            if tmp is not None:
                _unlink(tmp)

    def _dump(self, name: str, value: Any, sink: _HashingFile, dump: Dumper | None = None) -> None:
        try:
            (dump or SERIALIZERS[name][1])(value, sink)
        except (ArtifactError, OSError):
            raise
        except Exception as exc:
            cause = exc.__context__ if isinstance(exc.__context__, OSError) else None
            if cause is not None:  # pyarrow re-raises a failed write as its own error
                raise cause from None
            raise ArtifactError(
                f"cannot serialize {_type_path(value)} with {name}: {exc}"
            ) from None

    def _temp(self) -> tuple[int, str]:
        """A new temporary file under the root, open for writing: `(fd, path)`."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self._root, prefix=".tmp-")
        except FileNotFoundError:  # the root is made on the first write (or made again)
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._root, prefix=".tmp-")
        try:
            os.fchmod(fd, _FILE_MODE)  # mkstemp's 0600 would hide it from a container's user
        except BaseException:
            os.close(fd)
            _unlink(tmp)
            raise
        return fd, tmp

    def _commit(self, tmp: str, ref: ArtifactRef) -> None:
        """Make the finished temporary file `tmp` the artifact `ref` (under its final name);
        `tmp` is gone afterwards, whether this succeeds or raises."""
        self._place(tmp, ref)

    def _place(self, tmp: str, ref: ArtifactRef) -> None:
        """Rename into place; content already stored intact is only touched."""
        path = self._file(ref)
        shard = ref.hash[:2]
        if shard not in self._dirs:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._dirs.add(shard)
        try:
            os.replace(tmp, path)  # replaces a damaged copy of the same content, too
        except FileNotFoundError:  # the shard folder went away (a gc, a wiped store)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(tmp, path)
        except OSError:
            try:
                intact = hash_file(path) == ref.hash
            except OSError:
                intact = False
            if not intact:
                raise
            _touch(path)  # a shared file we may read but not replace
            _unlink(tmp)

    def adopt(self, src: Path, ref: ArtifactRef) -> None:
        """Move a file written elsewhere (a container's scratch folder) into the store,
        after checking it holds exactly the content its reference names."""
        check_written(src, ref)
        dest = self.path(ref)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.verify(ref) is None:
            _touch(dest)
            return  # already stored, intact
        tmp = dest.parent / f".tmp-adopt-{os.getpid()}-{ref.hash}"
        shutil.copyfile(src, tmp)  # the scratch folder may be on another filesystem
        os.replace(tmp, dest)

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        return bytes(self._read(ref, mapped=False))

    def _inline(self, ref: ArtifactRef) -> bytes:
        """An inline artifact's bytes, checked against its hash."""
        assert ref.data is not None
        if hash_bytes(ref.data) != ref.hash:
            raise ArtifactError(
                f"artifact {ref.hash[:12]} is corrupt (content hash differs): its inline "
                "value in the metadata store"
            )
        return ref.data

    def _read(self, ref: ArtifactRef, *, mapped: bool) -> bytes | bytearray | memoryview:
        """The file's verified content: a private copy-on-write mapping when `mapped`
        and the file is large, else its bytes (a writable bytearray when `mapped`)."""
        if ref.data is not None:
            return self._inline(ref)
        path = self.path(ref)
        try:
            with open(path, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                if mapped and size >= _MAP_FROM:
                    data: bytes | bytearray | memoryview = memoryview(
                        mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
                    )
                elif mapped:
                    data = bytearray(size)
                    f.readinto(data)
                else:
                    data = f.read()
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
        data = self._read(ref, mapped=ref.serializer in MAPPED)
        self.loads += 1
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
        if ref.data is not None:
            try:
                self._inline(ref)
            except ArtifactError as exc:
                return str(exc)
            return None
        path = self._file(ref)
        try:
            if ref.size < _MAP_FROM:
                ok = hash_bytes(_small_file(path, ref.size)) == ref.hash
            else:
                ok = _mapped_hash(Path(path)) == ref.hash
        except FileNotFoundError:
            return f"artifact {ref.hash[:12]} is missing: {path}"
        except OSError as exc:  # a folder, a device, a file we may not read
            return f"artifact {ref.hash[:12]} cannot be read ({exc.strerror or exc}): {path}"
        return None if ok else f"artifact {ref.hash[:12]} is corrupt (content hash differs): {path}"

    def verify_soon(self, ref: ArtifactRef) -> cf.Future[str | None] | None:
        """`verify(ref)` begun in the background, where a check costs a round trip (object
        storage); None here: a local check costs microseconds, made when it is needed."""
        return None

    def where(self, ref: ArtifactRef) -> str:
        """Where a file artifact is stored, for people (a path, or an object's URL)."""
        return str(self.path(ref))

    def copy_to(self, ref: ArtifactRef, dest: Path) -> None:
        """Write a file artifact's stored bytes to `dest`, after checking them."""
        problem = self.verify(ref)
        if problem is not None:
            raise ArtifactError(problem)
        shutil.copyfile(self.path(ref), dest)

    @contextlib.contextmanager
    def local_file(self, ref: ArtifactRef) -> Iterator[Path]:
        """A local path holding the artifact's bytes (not re-checked: for a preview that
        reads a little of a large file) while the block runs."""
        yield self.path(ref)

    def listing(self) -> list[StoredObject]:
        """Every stored artifact file (what garbage collection may delete)."""
        return [o for p in self.all_files() if (o := _stored(p)) is not None]

    def torn_writes(self) -> list[StoredObject]:
        """Leftovers of writes never finished (see `temp_files`)."""
        return [o for p in self.temp_files() if (o := _stored(p)) is not None]

    def remove(self, objects: list[StoredObject]) -> None:
        """Delete these stored objects (one already gone is no error)."""
        for obj in objects:
            Path(obj.name).unlink(missing_ok=True)

    def all_files(self) -> list[Path]:
        if not self.root.exists():
            return []
        return [p for p in self.root.glob("??/*") if p.is_file() and not _is_temp(p)]

    def temp_files(self) -> list[Path]:
        """Temporary files of writes not yet renamed into place: in flight, or left by
        a process killed mid-write (never read: an artifact is only its final name)."""
        if not self.root.exists():
            return []
        found = list(self.root.glob(".tmp-*")) + list(self.root.glob("??/.tmp-*"))
        return [p for p in found if p.is_file()]


def _stored(path: Path) -> StoredObject | None:
    """`path` as a `StoredObject`; None for a file gone meanwhile (renamed into place, or
    removed), which is never garbage."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return StoredObject(str(path), path.name.split(".")[0], st.st_size, st.st_mtime)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def check_written(src: Path, ref: ArtifactRef) -> None:
    """A file written elsewhere (a container's scratch folder) must hold exactly the
    content `ref` names before a store takes it."""
    try:
        ok = hash_file(src) == ref.hash and src.stat().st_size == ref.size
    except FileNotFoundError:
        raise ArtifactError(f"artifact {ref.hash[:12]} was not written: {src}") from None
    if not ok:
        raise ArtifactError(f"artifact {ref.hash[:12]} written at {src} does not match its hash")


def _is_temp(path: Path) -> bool:
    return path.name.startswith(".tmp-")
