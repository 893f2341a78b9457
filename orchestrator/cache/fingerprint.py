"""Code fingerprints: `component -> hash` for everything a step's behaviour depends on.

The walk starts at the step function and follows, transitively:

* a user function: its source (an AST dump without docstrings and without the
  decorators of its `def`, so comments, formatting and step options do not count), then
  the global names its bytecode reads, modules it imports inside its body (`import m`,
  `from m import f`), attribute chains on user modules (`pkg.inner.f`), literal
  `getattr(obj, "name")`, closure cells, defaults and keyword-only defaults, and
  `__wrapped__` (`functools.wraps`, `lru_cache`);
* a user class: its source, its user base classes, what its methods, static and class
  methods and properties reach, its class-level data (also set after the class body),
  dataclass and pydantic field defaults and default factories;
* an instance of a user class: its class, and its state (`vars()`, slots, dataclass
  fields) value by value;
* `functools.partial`: the function, the bound arguments and keywords; a bound method:
  the function and the object it is bound to;
* data: a canonical form (JSON-able values, dataclasses, pydantic models), numpy arrays
  by dtype, shape and bytes, compiled regexes by pattern and flags, anything else by its
  pickle; strings and paths under the project's package root are keyed relative to it;
* an installed package or the standard library: by name and version.

A user module's own dunders (`__name__`, `__file__`, ...) read by a function are keyed
by the module's identity (`module flow.__name__`), not by their values, which name the
folder or path-made import name it was loaded under. Component names carry no folder:
user modules are named by `identity.module_identity`.
What the walk cannot see is never dropped: it becomes a component named `not followed:
WHAT: WHY` (code without source, a computed `getattr`, `eval`/`exec`, an import that
fails, a compiled extension inside the project, state with no canonical form), which
`explain` lists on every hit and miss of the step.
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import functools
import importlib
import importlib.util
import inspect
import os
import pickle
import re
import sys
import types
from collections.abc import Callable
from typing import Any

from orchestrator.cache.hashing import canonical, dumps, hash_file, hash_text
from orchestrator.cache.identity import module_identity, module_root
from orchestrator.cache.packages import is_user_module, package_version, third_party_origin
from orchestrator.cache.source import (
    DYNAMIC_CALLS,
    Calls,
    code_digest,
    code_names,
    imports,
    parse,
    save_definitions,
)

UNFOLLOWED = "not followed: "
# A module's own names: they say which module it is and where it was loaded from (a
# path-made import name, a folder), so they are keyed by its identity, never by value.
_MODULE_DUNDERS = {"__name__", "__file__", "__spec__", "__loader__", "__package__", "__cached__"}


def _type_name(value: Any) -> str:
    t = type(value)
    return f"{module_identity(t.__module__)}.{t.__qualname__}"


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name[:2] == name[-2:] == "__"


def _is_sunder(name: str) -> bool:
    return len(name) > 2 and name[0] == name[-1] == "_" and name[1] != "_"


class _Walker:
    """Collects `component -> hash` reached from one step function."""

    def __init__(self, root: str | None) -> None:
        self.parts: dict[str, str] = {}
        self.seen: set[int] = set()
        self.root = root

    # -- values ---------------------------------------------------------------------------
    def visit_value(self, label: str, value: Any) -> None:
        if hasattr(value, "kind") and hasattr(value, "fn") and hasattr(value, "__wrapped__"):
            value = value.fn  # a Step: follow its function
        if isinstance(value, types.ModuleType):
            self.visit_module(value, None)
        elif isinstance(value, functools.partial):
            self.visit_partial(label, value)
        elif isinstance(value, staticmethod | classmethod):
            self.visit_value(label, value.__func__)
        elif isinstance(value, property):
            for acc in (value.fget, value.fset, value.fdel):
                if acc is not None:
                    self.visit_value(label, acc)
        elif isinstance(value, types.MethodType):
            self.visit_value(label, value.__func__)
            self.visit_value(f"{label}.__self__", value.__self__)
        elif isinstance(value, types.FunctionType):
            self.visit_function(value, label)
        elif isinstance(value, type):
            if is_user_module(value.__module__):
                self.visit_class(value)
            else:
                self.package(value.__module__)
        elif isinstance(value, types.BuiltinFunctionType | types.BuiltinMethodType):
            self.visit_builtin(label, value)
        elif callable(value) and getattr(value, "__wrapped__", None) is not None:
            self.package(type(value).__module__)
            self.visit_value(label, value.__wrapped__)  # lru_cache and other C wrappers
        elif isinstance(value, enum.Enum) or not is_user_module(type(value).__module__):
            self.visit_data(label, value)
        else:
            self.visit_instance(label, value)

    def visit_partial(self, label: str, value: functools.partial[Any]) -> None:
        self.visit_value(label, value.func)
        for i, arg in enumerate(value.args):
            self.visit_value(f"{label}.<argument {i}>", arg)
        for key, arg in value.keywords.items():
            self.visit_value(f"{label}.<keyword {key}>", arg)

    def visit_data(self, label: str, value: Any) -> None:
        if isinstance(value, contextvars.ContextVar):
            return  # per-run state (`current()`), set as each step runs: not code, not data
        if isinstance(value, enum.Enum) and is_user_module(type(value).__module__):
            self.visit_class(type(value))
        fp = self.data_hash(value)
        if callable(value):
            self.package(type(value).__module__)
        if fp is not None:
            self.parts[f"constant {label}"] = fp
        elif not callable(value):
            why = f"a {_type_name(value)} whose state cannot be hashed"
            self.parts[f"{UNFOLLOWED}constant {label}: {why}"] = "unhashable"

    def data_hash(self, value: Any) -> str | None:
        try:
            return hash_text(dumps([type(value).__name__, self.relative(canonical(value))]))
        except Exception:
            pass
        if isinstance(value, re.Pattern):
            return hash_text(repr((value.pattern, value.flags)))
        if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray":
            if value.dtype != object:
                return hash_text(repr((value.dtype.str, value.shape)) + value.tobytes().hex())
        try:
            data = pickle.dumps(value, protocol=5)
        except Exception:
            return None
        return hash_text(data.hex())

    def relative(self, value: Any) -> Any:
        """Strings and paths under the package root, keyed relative to it."""
        if isinstance(value, str) and self.root and value.startswith(self.root):
            return "<project>" + os.sep + value[len(self.root) :]
        if isinstance(value, list):
            return [self.relative(v) for v in value]
        if isinstance(value, dict):
            return {k: self.relative(v) for k, v in value.items()}
        return value

    def package(self, modname: str | None) -> None:
        if modname and modname != "builtins":
            self.parts[f"package {modname.split('.')[0]}"] = package_version(modname)

    def visit_builtin(self, label: str, value: Any) -> None:
        modname = getattr(value, "__module__", None) or ""
        if not modname:
            owner = getattr(value, "__self__", None)
            modname = getattr(owner, "__name__", "") if isinstance(owner, types.ModuleType) else ""
        if not is_user_module(modname):
            self.package(modname)
            return
        file = str(getattr(sys.modules[modname], "__file__", ""))
        why = f"compiled code in {os.path.basename(file)}; its file is hashed, not what it runs"
        self.parts[f"{UNFOLLOWED}function {label}: {why}"] = hash_file_or_name(file)

    # -- modules ----------------------------------------------------------------------------
    def visit_module(self, mod: types.ModuleType, names: set[str] | None) -> None:
        """A module read as `mod.attr...`: follow the attributes named in `names`."""
        if not is_user_module(mod.__name__):
            self.package(mod.__name__)
            return
        if names is None:
            return
        ident = module_identity(mod.__name__)
        members = vars(mod)
        for attr in sorted(names & members.keys()):
            key = hash((id(mod), attr))
            if key in self.seen:
                continue
            self.seen.add(key)
            value = members[attr]
            if isinstance(value, types.ModuleType):
                self.visit_module(value, names)
            else:
                self.visit_value(f"{ident}.{attr}", value)

    def visit_import(
        self,
        fn: types.FunctionType,
        name: str,
        module: str,
        level: int,
        fromlist: tuple[str, ...],
        names: set[str],
    ) -> None:
        try:
            package = fn.__globals__.get("__package__") or None
            full = importlib.util.resolve_name("." * level + module, package) if level else module
            top = full.split(".")[0]
            if top in sys.builtin_module_names or third_party_origin(top):
                self.package(full)
                return
            mod = importlib.import_module(full)
        except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
            why = f"import {'.' * level}{module} failed ({type(exc).__name__}: {exc})"
            self.parts[f"{UNFOLLOWED}{name}: {why}"] = "import"
            return
        if not fromlist:
            self.visit_module(sys.modules[full.split(".")[0]], names)
            return
        for attr in fromlist:
            value = getattr(mod, attr, None)
            if value is None:
                value = sys.modules.get(f"{full}.{attr}")
            if isinstance(value, types.ModuleType):
                self.visit_module(value, names)
            elif value is not None:
                self.visit_value(f"{module_identity(mod.__name__)}.{attr}", value)

    # -- functions --------------------------------------------------------------------------
    def visit_function(self, fn: types.FunctionType, label: str) -> None:
        if id(fn) in self.seen:
            return
        self.seen.add(id(fn))
        modname = fn.__globals__.get("__name__") or fn.__module__ or ""
        if not is_user_module(modname):
            self.package(modname)
            if getattr(fn, "__wrapped__", None) is not None:
                self.visit_value(label, fn.__wrapped__)
            return
        code = fn.__code__
        qual = code.co_qualname
        name = label if "<lambda>" in qual else f"{module_identity(modname)}.{qual}"
        parsed = parse(code, strip_decorators=True)
        if parsed is None:
            why = "no source code (made by exec or at run time); its bytecode is hashed"
            self.parts[f"{UNFOLLOWED}function {name}: {why}"] = code_digest(code)
            calls = None
        else:
            self.parts[f"function {name}"], calls = parsed
        self.visit_refs(fn, name, calls)

    def visit_refs(self, fn: types.FunctionType, name: str, calls: Calls | None) -> None:
        """What a user function reaches: globals, imports, closures, defaults, wrapped."""
        names = code_names(fn.__code__)
        if calls is not None:
            names |= self.scan_dynamic(fn, name, calls)
        g = fn.__globals__
        ident = module_identity(g.get("__name__") or "")
        for n in sorted(names):
            if n in _MODULE_DUNDERS:
                self.parts[f"module {ident}.{n}"] = hash_text(ident)
            elif n in g:
                if isinstance(g[n], types.ModuleType):
                    self.visit_module(g[n], names)
                else:
                    self.visit_value(f"{ident}.{n}", g[n])
        for module, level, fromlist in imports(fn.__code__):
            self.visit_import(fn, name, module, level, fromlist, names)
        for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
            try:
                self.visit_value(f"{name}.<closure {var}>", cell.cell_contents)
            except ValueError:  # an empty cell
                continue
        for i, default in enumerate(fn.__defaults__ or ()):
            self.visit_value(f"{name}.<default {i}>", default)
        for key, default in (fn.__kwdefaults__ or {}).items():
            self.visit_value(f"{name}.<default {key}>", default)
        if getattr(fn, "__wrapped__", None) is not None:
            self.visit_value(name, fn.__wrapped__)

    def scan_dynamic(self, fn: types.FunctionType, name: str, calls: Calls) -> set[str]:
        """Literal `getattr` names to follow; computed lookups recorded as not followed."""
        literal: set[str] = set()
        for callee, kind, a, b in calls:
            if kind == "literal":
                literal.add(a)
                continue
            if callee == "getattr" and self.is_code_holder(fn, a):
                what = f"getattr({b}, ...) with a computed name"
            elif callee in DYNAMIC_CALLS:
                what = f"{callee}(...) of a computed value"
            else:
                continue
            self.parts[f"{UNFOLLOWED}{name}: {what}"] = "dynamic"
        return literal

    @staticmethod
    def is_code_holder(fn: types.FunctionType, holder: str) -> bool:
        """`getattr(x, name)` where x is a user module, class or instance, or self/cls."""
        if not holder:
            return False
        if holder in ("self", "cls"):
            return True
        value = fn.__globals__.get(holder)
        if isinstance(value, types.ModuleType):
            return is_user_module(value.__name__)
        return value is not None and is_user_module(
            (value if isinstance(value, type) else type(value)).__module__
        )

    # -- classes and instances --------------------------------------------------------------
    def visit_class(self, cls: type) -> None:
        if id(cls) in self.seen:
            return
        self.seen.add(id(cls))
        qual = f"{module_identity(cls.__module__)}.{cls.__qualname__}"
        parsed = parse(cls, strip_decorators=False)
        if parsed is None:
            why = "no source code (made at run time)"
            self.parts[f"{UNFOLLOWED}class {qual}: {why}"] = hash_text(repr(sorted(vars(cls))))
        else:
            self.parts[f"class {qual}"] = parsed[0]
        for base in cls.__mro__[1:]:
            if is_user_module(base.__module__):
                self.visit_class(base)
        pydantic = hasattr(cls, "__pydantic_fields__")
        generated = dataclasses.is_dataclass(cls) or hasattr(cls, "__attrs_attrs__")
        for attr, member in vars(cls).items():
            if isinstance(member, types.FunctionType):
                if generated and inspect.unwrap(member).__code__.co_filename.startswith("<"):
                    continue  # made from the fields, which `visit_fields` follows
                if not is_user_module(member.__globals__.get("__name__") or ""):
                    self.visit_function(member, f"{qual}.{attr}")  # given from elsewhere
                    continue  # (`dataclasses`' own `__getstate__` of a slots class)
                parsed = parse(member.__code__, strip_decorators=True)
                self.visit_refs(member, f"{qual}.{attr}", parsed[1] if parsed else None)
            elif isinstance(member, staticmethod | classmethod | property | functools.partial):
                self.visit_value(f"{qual}.{attr}", member)
            elif not (_is_dunder(attr) or _is_sunder(attr) or pydantic):
                self.visit_value(f"{qual}.{attr}", member)
        self.visit_fields(cls, qual)

    def visit_fields(self, cls: type, qual: str) -> None:
        """Dataclass and pydantic field defaults and default factories."""
        if dataclasses.is_dataclass(cls):
            fields = [(f.name, f.default, f.default_factory) for f in dataclasses.fields(cls)]
            missing: Any = dataclasses.MISSING
        elif hasattr(cls, "__pydantic_fields__"):
            from pydantic_core import PydanticUndefined

            fields = [(k, f.default, f.default_factory) for k, f in cls.__pydantic_fields__.items()]
            missing = PydanticUndefined
        else:
            return
        for name, default, factory in fields:
            if default is not missing:
                self.visit_value(f"{qual}.{name}", default)
            if factory is not None and factory is not dataclasses.MISSING:
                self.visit_value(f"{qual}.{name}.<default_factory>", factory)

    def visit_instance(self, label: str, value: Any) -> None:
        if id(value) in self.seen:
            return
        self.seen.add(id(value))
        self.visit_class(type(value))
        state = _state(value)
        if state is None:
            self.visit_data(label, value)
            return
        for attr, item in sorted(state.items()):
            self.visit_value(f"{label}.{attr}", item)


def _state(value: Any) -> dict[str, Any] | None:
    """An instance's attributes (dict, slots, dataclass fields); None for builtin bases."""
    if isinstance(value, dict | list | tuple | set | frozenset | str | int | float | bytes):
        return None
    state: dict[str, Any] = {}
    if dataclasses.is_dataclass(value):
        state = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    for klass in type(value).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if slot not in ("__dict__", "__weakref__") and hasattr(value, slot):
                state.setdefault(slot, getattr(value, slot))
    state.update(getattr(value, "__dict__", {}))
    return state


def hash_file_or_name(file: str) -> str:
    try:
        return hash_file(file)  # type: ignore[arg-type]
    except OSError:
        return hash_text(file)


_fingerprints: dict[Callable[..., Any], dict[str, str]] = {}


def code_fingerprint(fn: Callable[..., Any]) -> dict[str, str]:
    """`component -> hash` for a step function and the code it reaches (memoised per process)."""
    try:
        return _fingerprints[fn]
    except KeyError:
        pass
    modname = getattr(fn, "__module__", "") or ""
    root = module_root(modname) if is_user_module(modname) else None
    walker = _Walker(str(root) + os.sep if root else None)
    walker.visit_value(f"{module_identity(modname)}.{getattr(fn, '__qualname__', '')}", fn)
    parts = dict(sorted(walker.parts.items()))
    save_definitions()
    _fingerprints[fn] = parts
    return parts


def unfollowed(parts: dict[str, str]) -> list[str]:
    """The components of a fingerprint the walk could not follow, as `WHAT: WHY` lines."""
    return [k[len(UNFOLLOWED) :] for k in parts if k.startswith(UNFOLLOWED)]


def clear_fingerprints() -> None:
    _fingerprints.clear()
    is_user_module.cache_clear()
