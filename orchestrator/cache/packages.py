"""Which modules are the user's own, and the version of everything else.

A module is the user's when its file lies outside the standard library and the
installed-packages folders (`site-packages`, `dist-packages`): the fingerprint follows
its code. Anything else enters a fingerprint as `package NAME` with its version (the
Python version for the standard library).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import sys
import sysconfig


@functools.cache
def _third_party_roots() -> tuple[str, ...]:
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= {p for p in sys.path if "site-packages" in p or "dist-packages" in p}
    return tuple(sorted(os.path.realpath(p) + os.sep for p in paths if p))


def _installed(file: str) -> bool:
    return os.path.realpath(file).startswith(_third_party_roots())


@functools.cache
def is_user_module(modname: str) -> bool:
    mod = sys.modules.get(modname)
    if mod is None or modname in sys.builtin_module_names:
        return False
    file = getattr(mod, "__file__", None)
    return bool(file) and not _installed(str(file))


def third_party_origin(top: str) -> bool:
    """True when top-level module `top` is installed or standard (found without importing)."""
    mod = sys.modules.get(top)
    if mod is not None:
        return not is_user_module(top)
    spec = importlib.util.find_spec(top)
    if spec is None:
        raise ModuleNotFoundError(f"No module named '{top}'")
    places = [spec.origin] if spec.origin and spec.origin not in ("built-in", "frozen") else []
    places += list(spec.submodule_search_locations or [])
    return not places or all(_installed(p) for p in places)


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
