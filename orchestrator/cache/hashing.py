"""Hashing: content hashes, canonical parameters, cache keys.

* Content hashes are xxh3-128 hex digests of serialized bytes (fast, non-cryptographic:
  they address content, they do not defend against an adversary). `hash_file` reads
  regular files only: a FIFO, a device or a folder is refused at once (`NotRegularFile`),
  never read forever.
* A cache key hashes (code fingerprint digest, canonical params, input content hashes,
  salt); the code fingerprint itself is built in `cache.fingerprint`.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import json
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xxhash

from orchestrator.errors import ArtifactError

HASH_SALT = "orch-cache-v2"
_CHUNK = 8 * 1024 * 1024


def hash_bytes(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


class NotRegularFile(OSError):
    """A path that names a FIFO, a device, a socket or a folder, not a regular file."""


def file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def hash_file(path: Path | str) -> str:
    # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = file_kind(mode)
        raise NotRegularFile(errno.EINVAL, f"not a regular file ({kind})", str(path))
    with os.fdopen(fd, "rb", buffering=0) as f:
        h = xxhash.xxh3_128()
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def hash_text(text: str) -> str:
    return xxhash.xxh3_64_hexdigest(text.encode())


# -- canonical parameters -------------------------------------------------------------


_PLAIN = frozenset({type(None), bool, int, str})


def _str_key(item: tuple[Any, Any]) -> str:
    return str(item[0])


def canonical(value: Any) -> Any:
    """A JSON-able, order-independent form of a parameter value."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:  # the common case, without the ABC checks below
        text_keys = all(type(k) is str for k in value)  # unique: sorting never compares values
        ordered = sorted(value.items()) if text_keys else sorted(value.items(), key=_str_key)
        return {str(k): canonical(v) for k, v in ordered}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):  # JSON (and PostgreSQL) have no NaN or infinity
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return canonical(value.value)
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=_str_key)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((canonical(v) for v in value), key=repr)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return canonical(dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return canonical(dataclasses.asdict(value))
    raise ArtifactError(
        f"parameter value {value!r} of type {type(value).__name__} has no canonical form; "
        "use JSON-able values, pydantic models or dataclasses as parameters"
    )


_DUMPS = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def dumps(value: Any) -> str:
    """Compact JSON with sorted keys (what `json.dumps(value, sort_keys=True,
    separators=(",", ":"))` gives, without building an encoder per call)."""
    return _DUMPS(value)


# -- cache keys -----------------------------------------------------------------------


def digest(parts: Mapping[str, str]) -> str:
    return hash_text(dumps(parts))


def cache_key(code_digest: str, params_json: str, input_hashes: list[str], salt: str) -> str:
    h = xxhash.xxh3_128()
    h.update(HASH_SALT.encode())
    h.update(b"\0" + code_digest.encode() + b"\0" + params_json.encode())
    for ih in input_hashes:
        h.update(b"\0" + ih.encode())
    h.update(b"\0" + salt.encode())
    return h.hexdigest()
