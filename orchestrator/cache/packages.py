"""Which modules are the user's own, and the version of everything else.

A module is the user's when its file lies outside the standard library and the
installed-packages folders (`site-packages`, `dist-packages`): the fingerprint follows
its code. Anything else enters a fingerprint as `package NAME` with its version (the
Python version for the standard library). The version is found without importing the
package: its `__version__` when it is loaded, else the metadata of the distribution
that ships it (named like it, or found by its `top_level.txt` or `RECORD`), so a step
that imports scikit-learn inside its body counts its version before the import runs.
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


def _ships(dist: importlib.metadata.Distribution, top: str) -> bool:
    """Whether `dist` installs top-level module `top` (its files read as plain text)."""
    tops = dist.read_text("top_level.txt")
    if tops is not None:
        return top in tops.split()
    record = dist.read_text("RECORD") or ""
    return any(
        record.startswith(p) or f"\n{p}" in record for p in (f"{top}/", f"{top}.py,", f"{top}.")
    )


@functools.cache
def _shipped_version(top: str) -> str | None:
    """The version of the first distribution on `sys.path` that ships module `top`."""
    for dist in importlib.metadata.distributions():
        if _ships(dist, top):
            return dist.version
    return None


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
    if top in sys.stdlib_module_names:
        return f"python-{sys.version_info.major}.{sys.version_info.minor}"
    return _shipped_version(top) or "unknown"
