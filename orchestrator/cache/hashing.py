"""Hashing: content hashes, canonical parameters, transitive code fingerprints, cache keys.

* Content hashes are xxh3-128 hex digests of serialized bytes (fast, non-cryptographic:
  they address content, they do not defend against an adversary).
* A code fingerprint follows a step's code transitively: the function's own source (as an
  AST dump, so comments and formatting do not count), and, reached from the names its
  bytecode loads, the helper functions and classes of the user's own modules, closures,
  default values and module-level constants; an installed third-party package enters by
  its name and version. The fingerprint is a mapping `component -> hash`, so a cache miss
  can say *which* function or constant changed.
* A cache key hashes (code fingerprint, canonical params, input content hashes, salt).
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import functools
import importlib.metadata
import inspect
import json
import math
import os
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import xxhash

from orchestrator.errors import ArtifactError

HASH_SALT = "orch-cache-v1"
_CHUNK = 8 * 1024 * 1024


def hash_bytes(data: bytes | memoryview) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def hash_file(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def hash_text(text: str) -> str:
    return xxhash.xxh3_64_hexdigest(text.encode())


# -- canonical parameters -------------------------------------------------------------


def canonical(value: Any) -> Any:
    """A JSON-able, order-independent form of a parameter value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):  # JSON (and PostgreSQL) have no NaN or infinity
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return canonical(value.value)
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
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


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- code fingerprints ----------------------------------------------------------------


def _third_party_roots() -> tuple[str, ...]:
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= {p for p in sys.path if "site-packages" in p or "dist-packages" in p}
    return tuple(sorted(os.path.realpath(p) + os.sep for p in paths if p))


@functools.cache
def _is_user_module(modname: str) -> bool:
    mod = sys.modules.get(modname)
    if mod is None or modname in sys.builtin_module_names:
        return False
    file = getattr(mod, "__file__", None)
    if not file:
        return False
    real = os.path.realpath(file)
    return not real.startswith(_third_party_roots())


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


@functools.cache
def package_version(modname: str) -> str:
    top = modname.split(".")[0]
    declared = getattr(sys.modules.get(top), "__version__", None)
    if isinstance(declared, str):
        return declared
    try:
        return importlib.metadata.version(top)
    except importlib.metadata.PackageNotFoundError:
        pass
    pkgs = _distributions().get(top)
    if pkgs:
        try:
            return importlib.metadata.version(pkgs[0])
        except importlib.metadata.PackageNotFoundError:
            pass
    if top in sys.stdlib_module_names:
        return f"python-{sys.version_info.major}.{sys.version_info.minor}"
    return "unknown"


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _source_hash(obj: Any) -> str:
    try:
        src = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return hash_text(repr(code.co_code) if code else repr(obj))
    try:
        tree = _strip_docstrings(ast.parse(src))
        # decorators are part of the definition site, not of the behaviour we fingerprint
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                node.decorator_list = []
                break
        return hash_text(ast.dump(tree))
    except SyntaxError:
        return hash_text(src)


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _const_fingerprint(value: Any) -> str | None:
    try:
        return hash_text(dumps(canonical(value)))
    except Exception:
        return None


class _Walker:
    """Collects `component -> hash` for everything a function's behaviour depends on."""

    def __init__(self) -> None:
        self.parts: dict[str, str] = {}
        self.seen: set[int] = set()

    def visit_value(self, label: str, value: Any) -> None:
        target = getattr(value, "__wrapped__", None) if _is_step_like(value) else value
        if target is not None and target is not value:
            value = target
        if isinstance(value, types.ModuleType):
            if not _is_user_module(value.__name__):
                self.parts[f"package {value.__name__.split('.')[0]}"] = package_version(
                    value.__name__
                )
            return
        if isinstance(value, types.FunctionType | type | types.MethodType):
            fn = value.__func__ if isinstance(value, types.MethodType) else value
            mod = getattr(fn, "__module__", None) or ""
            if mod and _is_user_module(mod):
                self.visit_callable(fn)
            elif mod and mod != "builtins":
                self.parts[f"package {mod.split('.')[0]}"] = package_version(mod)
            return
        if callable(value) or isinstance(value, types.BuiltinFunctionType):
            mod = getattr(type(value), "__module__", "") or ""
            if mod and mod != "builtins":
                self.parts[f"package {mod.split('.')[0]}"] = package_version(mod)
            return
        fp = _const_fingerprint(value)
        if fp is not None:
            self.parts[f"constant {label}"] = fp

    def visit_callable(self, fn: Any) -> None:
        if id(fn) in self.seen:
            return
        self.seen.add(id(fn))
        qual = f"{fn.__module__}.{getattr(fn, '__qualname__', fn.__name__)}"
        kind = "class" if isinstance(fn, type) else "function"
        self.parts[f"{kind} {qual}"] = _source_hash(fn)
        if isinstance(fn, type):
            for attr in vars(fn).values():
                member = attr.__func__ if isinstance(attr, classmethod | staticmethod) else attr
                if isinstance(member, types.FunctionType):
                    self._visit_globals(member, qual)
            return
        self._visit_globals(fn, qual)

    def _visit_globals(self, fn: types.FunctionType, qual: str) -> None:
        names = _code_names(fn.__code__)
        g = fn.__globals__
        for name in sorted(names):
            if name in g:
                value = g[name]
                if isinstance(value, types.ModuleType) and _is_user_module(value.__name__):
                    # `helpers.clean(...)`: follow the attributes this code reads on the module
                    for attr in sorted(names):
                        if attr in vars(value):
                            self.visit_value(f"{value.__name__}.{attr}", vars(value)[attr])
                    continue
                self.visit_value(f"{fn.__module__}.{name}", value)
        if fn.__closure__:
            for var, cell in zip(fn.__code__.co_freevars, fn.__closure__, strict=False):
                try:
                    self.visit_value(f"{qual}.<closure {var}>", cell.cell_contents)
                except ValueError:  # empty cell
                    continue
        for i, default in enumerate(fn.__defaults__ or ()):
            self.visit_value(f"{qual}.<default {i}>", default)


def _is_step_like(value: Any) -> bool:
    return hasattr(value, "__wrapped__") and hasattr(value, "kind") and hasattr(value, "fn")


_fingerprints: dict[Callable[..., Any], dict[str, str]] = {}


def code_fingerprint(fn: Callable[..., Any]) -> dict[str, str]:
    """`component -> hash` for a step function and the code it reaches (memoised per process)."""
    try:
        return _fingerprints[fn]
    except KeyError:
        pass
    walker = _Walker()
    walker.visit_callable(fn)
    parts = dict(sorted(walker.parts.items()))
    _fingerprints[fn] = parts
    return parts


def clear_fingerprints() -> None:
    _fingerprints.clear()
    _is_user_module.cache_clear()


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
