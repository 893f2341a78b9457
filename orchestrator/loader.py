"""Resolve a run target: a built-in pipeline, `path/to/file.py:function` or `module:function`.

Loading imports user code. Whatever it raises at import (an exception, or `sys.exit(N)`)
becomes one `TargetNotFound` naming the file and line; only Ctrl-C passes through. A
pipeline whose own definition is wrong does not stop its file from loading: the error
comes when that pipeline is the target (`Pipeline.signature` is checked here).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError, TargetNotFound, did_you_mean
from orchestrator.execution.worker import load_module_from_path
from orchestrator.model.pipeline import Pipeline

PIPELINES_GROUP = "orchestrator.pipelines"
_BUILTIN = "orchestrator.pipelines:BUILTIN"  # what pyproject declares as `builtin`


def builtin_pipelines() -> dict[str, Pipeline]:
    """Pipelines registered under the entry-point group `orchestrator.pipelines`: each entry
    is a `Pipeline` or a mapping of names to pipelines (ours: `builtin`). An install whose
    metadata predates the group (an old editable install) still gets the built-ins."""
    from importlib.metadata import EntryPoint, entry_points

    found = list(entry_points(group=PIPELINES_GROUP))
    if not any(ep.value == _BUILTIN for ep in found):
        found.append(EntryPoint("builtin", _BUILTIN, PIPELINES_GROUP))
    out: dict[str, Pipeline] = {}
    for ep in found:
        obj = ep.load()
        items = [obj] if isinstance(obj, Pipeline) else list(dict(obj).values())
        out.update({p.name: p for p in items if isinstance(p, Pipeline)})
    return out


def normalize_target(target: str) -> str:
    """`file.py:fn` with an absolute path, so a run can be resumed from any folder."""
    where, sep, attr = target.rpartition(":")
    if sep and where.endswith(".py"):
        return f"{Path(where).resolve()}:{attr}"
    return target


def load_target(target: str) -> Pipeline:
    if ":" not in target:
        builtins = builtin_pipelines()
        if target in builtins:
            return builtins[target]
        raise TargetNotFound(
            f"no built-in pipeline '{target}'{did_you_mean(target, builtins)}; built-ins: "
            f"{', '.join(sorted(builtins))}; or give path/to/file.py:function"
        )
    where, _, attr = target.rpartition(":")
    module: Any
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise TargetNotFound(f"pipeline file not found: {path}")
        try:
            module = load_module_from_path(path)
        except OrchestratorError:
            raise
        except (Exception, SystemExit) as exc:
            raise TargetNotFound(f"cannot load {path}: {_where(exc, path)}{_what(exc)}") from None
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise TargetNotFound(f"cannot import module '{where}': {exc}") from None
        except OrchestratorError:
            raise
        except (Exception, SystemExit) as exc:
            raise TargetNotFound(f"cannot import module '{where}': {_what(exc)}") from None
    obj = getattr(module, attr, None)
    if obj is None:
        names = [n for n, v in vars(module).items() if isinstance(v, Pipeline)]
        raise TargetNotFound(
            f"'{where}' has no pipeline '{attr}'{did_you_mean(attr, names)}"
            f" (pipelines there: {', '.join(names) or 'none'})"
        )
    if not isinstance(obj, Pipeline):
        raise TargetNotFound(f"'{target}' is a {type(obj).__name__}, not a @pipeline function")
    obj.signature  # noqa: B018  (a broken definition is an error naming this pipeline)
    return obj


def _what(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}) while being imported"
    return f"{type(exc).__name__}: {exc}"


def _where(exc: BaseException, path: Path) -> str:
    """`line N: ` of the deepest frame in the user's file, when there is one."""
    import traceback

    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"line {exc.lineno}: "
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path.resolve()
    ]
    return f"line {frames[-1].lineno}: " if frames else ""
