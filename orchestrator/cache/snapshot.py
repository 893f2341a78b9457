"""What a model version's code and environment were, read from the running process.

* `project_root(target)`: the package root of a run target's pipeline file or module
  (None for a built-in pipeline, whose code is the installed package's);
* `project_sources(root)`: `{path relative to root: text}` of every user module loaded in
  this process whose file lies under `root`. That is every source whose code enters a
  step's code fingerprint there (functions, classes and constants of the project), and
  the modules the pipeline file needs to import, so the files alone rebuild the run;
* `installed_packages()`: `{distribution: version}` of everything installed, the first
  distribution of a name on `sys.path` winning, as the import system picks it.

Invariant: nothing here imports user code; it reads what is loaded and the files it
came from. A file that cannot be read (deleted since it was imported) is left out.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from orchestrator.cache.identity import package_root
from orchestrator.cache.packages import is_user_module


def project_root(target: str) -> Path | None:
    """The package root of `target` (`/abs/flow.py:fn` or `module:fn`); None if built in."""
    where, sep, _ = target.rpartition(":")
    if not sep:
        return None
    if where.endswith(".py"):
        return package_root(str(Path(where).resolve().parent))
    try:
        spec = importlib.util.find_spec(where.split(".")[0])
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec else None
    if not origin or not is_user_module(where.split(".")[0]):
        return None
    return package_root(str(Path(origin).resolve().parent))


def project_sources(root: Path) -> dict[str, str]:
    """`{path relative to root: source text}` of the user modules loaded from under `root`."""
    root = root.resolve()
    found: dict[str, str] = {}
    for name, mod in sorted(sys.modules.items()):
        file = getattr(mod, "__file__", None)
        if not file or not str(file).endswith(".py") or not is_user_module(name):
            continue
        path = Path(file).resolve()
        if root not in path.parents:
            continue
        try:
            found[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return dict(sorted(found.items()))


def installed_packages() -> dict[str, str]:
    """`{distribution name: version}` of every installed distribution."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name not in out:
            out[str(name)] = dist.version
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def python_version() -> str:
    return ".".join(str(n) for n in sys.version_info[:3])
