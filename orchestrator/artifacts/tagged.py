"""Tagged JSON: JSON that gives back the same Python types it was given.

Plain JSON values (None, bool, int, float including NaN and infinities, str, list, dict
with str keys) are written as plain JSON, byte for byte what `json.dumps(sort_keys=True)`
writes. Everything plain JSON would silently change is written as a one-key object whose
key is a tag:

    {"$tuple": [...]}  {"$set": [...]}  {"$frozenset": [...]}  {"$dict": [[k, v], ...]}
    {"$bytes": "<base64>"}  {"$complex": [re, im]}  {"$decimal": "1.10"}
    {"$date": "2024-01-01"}  {"$datetime": [iso, zone key or null, fold]}
    {"$timedelta": [days, seconds, microseconds]}
    {"$numpy": [dtype, "<base64 bytes>"]}  {"$ndarray": "<base64 .npy>"}

A dict is written as pairs (`$dict`) when a key is not a str or starts with `$`, so a
plain object never carries a `$` key and decoding is unambiguous. Sets and pair lists
are sorted by their encoded text, so the same value always gives the same bytes (the
artifact's content hash). Types are matched exactly (a `str` or `float` subclass, an
`Enum`, a pandas `Timestamp` is not a str, float or datetime here): `encode` raises
`TypeError` for anything it cannot give back unchanged.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import json
import zoneinfo
from collections.abc import Callable
from typing import Any

_PLAIN = (type(None), bool, int, float, str)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _text(encoded: Any) -> str:
    return json.dumps(encoded, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _zone(value: dt.datetime) -> str | None:
    tz = value.tzinfo
    if tz is None or tz is dt.UTC:
        return None
    if isinstance(tz, zoneinfo.ZoneInfo) and tz.key:
        return tz.key
    if type(tz) is dt.timezone and tz.tzname(None).startswith("UTC"):
        return None  # a fixed offset: the ISO text carries it
    raise TypeError(f"a datetime with time zone {tz!r} (use zoneinfo or a fixed offset)")


def _datetime(value: dt.datetime) -> Any:
    key = _zone(value)
    text = value.replace(tzinfo=None).isoformat() if key else value.isoformat()
    return {"$datetime": [text, key, value.fold]}


def _numpy(value: Any) -> Any:
    import numpy as np

    if type(value) is np.ndarray:
        if value.dtype.hasobject:
            raise TypeError("a numpy array of Python objects")
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return {"$ndarray": _b64(buf.getvalue())}
    if not isinstance(value, np.generic) or value.dtype.hasobject:
        raise TypeError(f"a numpy.{type(value).__qualname__}")
    return {"$numpy": [value.dtype.str, _b64(value.tobytes())]}


def encode(value: Any, depth: int = 0) -> Any:
    """The JSON-able, tagged form of `value`; TypeError if its type would not come back."""
    t = type(value)
    if t in _PLAIN:
        return value
    if depth > 200:
        raise TypeError("a value nested more than 200 levels deep")
    d = depth + 1
    if t is list:
        return [encode(v, d) for v in value]
    if t is dict:
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: encode(v, d) for k, v in value.items()}
        pairs = [[encode(k, d), encode(v, d)] for k, v in value.items()]
        return {"$dict": sorted(pairs, key=lambda p: _text(p[0]))}
    if t is tuple:
        return {"$tuple": [encode(v, d) for v in value]}
    if t is set or t is frozenset:
        return {f"${t.__name__}": sorted((encode(v, d) for v in value), key=_text)}
    special = _SPECIAL.get(t)
    if special is not None:
        return special(value)
    if t.__module__ == "numpy" and (t.__name__ == "ndarray" or hasattr(value, "dtype")):
        return _numpy(value)
    raise TypeError(f"a {t.__module__}.{t.__qualname__}")


_SPECIAL: dict[type, Callable[[Any], Any]] = {
    bytes: lambda v: {"$bytes": _b64(v)},
    complex: lambda v: {"$complex": [v.real, v.imag]},
    decimal.Decimal: lambda v: {"$decimal": str(v)},
    dt.date: lambda v: {"$date": v.isoformat()},
    dt.datetime: _datetime,
    dt.timedelta: lambda v: {"$timedelta": [v.days, v.seconds, v.microseconds]},
}


def dumps(value: Any) -> bytes:
    t = type(value)
    if t is int:  # what json.dumps writes for one, without its encoder (mapped elements)
        return int.__repr__(value).encode()
    if t is str:
        return json.encoder.encode_basestring_ascii(value).encode()  # type: ignore[attr-defined]
    return _text(encode(value)).encode()


def _load_datetime(v: list[Any]) -> dt.datetime:
    text, key, fold = v
    value = dt.datetime.fromisoformat(text)
    if key:
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(key))
    return value.replace(fold=fold)


def _load_numpy(v: list[str]) -> Any:
    import numpy as np

    dtype = np.dtype(v[0])
    if dtype.itemsize == 0:  # an empty numpy str or bytes
        return dtype.type()
    return np.frombuffer(base64.b64decode(v[1]), dtype=dtype)[0]


def _load_ndarray(v: str) -> Any:
    import numpy as np

    return np.load(io.BytesIO(base64.b64decode(v)), allow_pickle=False)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$tuple": tuple,
    "$set": set,
    "$frozenset": frozenset,
    "$dict": lambda v: {k: item for k, item in v},
    "$bytes": base64.b64decode,
    "$complex": lambda v: complex(v[0], v[1]),
    "$decimal": decimal.Decimal,
    "$date": dt.date.fromisoformat,
    "$datetime": _load_datetime,
    "$timedelta": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "$numpy": _load_numpy,
    "$ndarray": _load_ndarray,
}


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((key, value),) = obj.items()
        decoder = _DECODERS.get(key)
        if decoder is not None:
            return decoder(value)
    return obj


def loads(data: bytes | str) -> Any:
    return json.loads(data, object_hook=_hook)
