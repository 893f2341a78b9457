"""Project-relative identities of user modules, so cache keys do not depend on a folder.

A pipeline file loaded from a path gets an import name made from that path (the worker
needs one); the cache must not see it. The identity of such a module is its dotted name
relative to its *package root*: the first ancestor folder without an `__init__.py`. So
`/any/where/proj/flow.py` is `flow` and `/any/where/proj/pkg/flow.py` (with
`pkg/__init__.py`) is `pkg.flow`, the names Python would give them with the package root
on `sys.path`. A module imported by name keeps its name. Invariant: the identity of a
module depends only on files inside its package root, never on where that root lives.
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path
from typing import Any


@functools.cache
def package_root(folder: str) -> Path:
    """The first folder, from `folder` upwards, that is not a package."""
    path = Path(folder)
    while (path / "__init__.py").exists() and path.parent != path:
        path = path.parent
    return path


@functools.cache
def _relative_name(file: str) -> str:
    path = Path(file).resolve()
    parts = list(path.with_suffix("").relative_to(package_root(str(path.parent))).parts)
    if parts and parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _from_path(mod: Any) -> bool:
    return bool(getattr(mod, "__orch_from_path__", False)) and bool(getattr(mod, "__file__", None))


def module_identity(modname: str) -> str:
    """The path-independent name of module `modname` (its own name unless loaded by path)."""
    mod = sys.modules.get(modname)
    if mod is None or not _from_path(mod):
        return modname
    return _relative_name(str(mod.__file__))


def module_root(modname: str) -> Path | None:
    """The package root of a module's file, or None for a module without a file."""
    file = getattr(sys.modules.get(modname), "__file__", None)
    return package_root(str(Path(file).resolve().parent)) if file else None


def find_module(identity: str) -> Any:
    """The module with this identity: one loaded by path in this process, else an import."""
    for mod in list(sys.modules.values()):
        if _from_path(mod) and _relative_name(str(mod.__file__)) == identity:
            return mod
    return importlib.import_module(identity)
