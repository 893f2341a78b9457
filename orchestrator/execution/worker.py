"""The worker side of the executor boundary: run one step invocation, never raise.

`execute(invocation, step, artifacts)` loads the inputs (verifying their hashes), calls
the step function with a run context active and its prints and log lines captured,
serializes each output into the artifact store, and returns a `StepResult`: plain data
that can cross a thread, a process, a container or a Dask worker. A failure in user code
comes back as `ok=False` with the error and traceback as text, as dask's workers do.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import importlib
import importlib.util
import io
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.artifacts.store import ArtifactRef, ArtifactStore, Prepared
from orchestrator.cache.hashing import canonical
from orchestrator.errors import ArtifactError, ExecutorError, OrchestratorError, ParamError
from orchestrator.execution.context import Registry, RunContext, activate, deactivate
from orchestrator.logs import live_log_file
from orchestrator.model.graph import validate_value
from orchestrator.model.step import Step
from orchestrator.tracking import Tracker


@dataclasses.dataclass
class StepInvocation:
    """Everything a worker needs to run one attempt of one step (plain, picklable data)."""

    run_id: str
    pipeline: str
    step: str
    step_ref: str
    inputs: dict[str, ArtifactRef]
    params: dict[str, Any]
    cache_key: str
    attempt: int
    pipeline_params: dict[str, Any]
    serializer: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for boundaries that cannot pickle (containers): params in canonical form."""
        d = dataclasses.asdict(self)
        d["inputs"] = {k: r.to_json() for k, r in self.inputs.items()}
        d["params"] = canonical(self.params)
        d["pipeline_params"] = canonical(self.pipeline_params)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StepInvocation:
        d = dict(d)
        d["inputs"] = {k: ArtifactRef.from_json(r) for k, r in d["inputs"].items()}
        return cls(**d)


@dataclasses.dataclass
class StepResult:
    ok: bool
    outputs: list[ArtifactRef]
    error: str | None
    traceback: str | None
    log: str
    duration: float
    values: list[Any] | None = None  # in-process executors only; never crosses a process
    tracked: dict[str, Any] | None = None  # what the step logged (orchestrator/tracking.py)

    def without_values(self) -> StepResult:
        return dataclasses.replace(self, values=None)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self.without_values())
        d["outputs"] = [r.to_json() for r in self.outputs]
        del d["values"]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StepResult:
        d = dict(d)
        d["outputs"] = [ArtifactRef.from_json(r) for r in d["outputs"]]
        return cls(**d)


# -- log capture ----------------------------------------------------------------------

_sink: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("step_log", default=None)


class _Router(io.TextIOBase):
    """Installed on sys.stdout/err: writes from inside a step go to that step's log."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def write(self, s: str) -> int:
        sink = _sink.get()
        if sink is None:
            return self.real.write(s)
        sink.append(s)
        return len(s)

    def flush(self) -> None:
        self.real.flush()

    def fileno(self) -> int:
        return int(self.real.fileno())

    def isatty(self) -> bool:
        return bool(self.real.isatty())


_install_lock = threading.Lock()

# run id -> folder of live per-step log files (inherited by forked process-executor children)
_live_dirs: dict[str, Path] = {}


def stream_logs(run_id: str, folder: Path | None) -> None:
    """While `run_id` runs here, also append each step's log lines to `folder/STEP.log`."""
    if folder is None:
        _live_dirs.pop(run_id, None)
    else:
        _live_dirs[run_id] = folder


class _Lines(list[str]):
    """A step's captured log: kept in memory for the store, and teed to a live file
    (opened on the first line, so a silent step costs no file)."""

    def __init__(self, path: Path | None) -> None:
        super().__init__()
        self._path = path
        self._file: Any = None

    def append(self, s: str) -> None:
        super().append(s)
        if self._path is None:
            return
        try:
            if self._file is None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
            self._file.write(s)
            if "\n" in s:
                self._file.flush()
        except (OSError, ValueError):
            self._path = None  # live logs are a convenience; the store keeps the log

    def close(self) -> None:
        self._path = None
        if self._file is not None:
            self._file.close()
            self._file = None


def install_capture() -> None:
    """Route step prints to step logs (idempotent)."""
    if isinstance(sys.stdout, _Router) and isinstance(sys.stderr, _Router):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr)


class StepLog:
    """The logger a step gets as `current().log`: lines are kept with the step run."""

    def __init__(self, lines: list[str], echo: Callable[..., Any] | None = None) -> None:
        self.lines, self.echo = lines, echo

    def _emit(self, level: str, event: str, kw: dict[str, Any]) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S.%f")[:-3]
        extra = " ".join(f"{k}={v!r}" for k, v in kw.items())
        self.lines.append(f"{stamp} [{level}] {event}{' ' + extra if extra else ''}\n")
        if self.echo is not None:
            self.echo(level, event, **kw)

    def debug(self, event: str, **kw: Any) -> None:
        self._emit("debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit("info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit("warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._emit("error", event, kw)


# -- resolving steps by reference -------------------------------------------------------


def load_module_from_path(path: Path) -> Any:
    """Import a user's `file.py` as a module (once), marked so its steps' refs carry the path."""
    path = path.resolve()
    name = "orch_user_" + "_".join(path.with_suffix("").parts[-3:]).replace("-", "_").replace(
        ".", "_"
    )
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ExecutorError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    module.__orch_from_path__ = True  # type: ignore[attr-defined]
    sys.modules[name] = module
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def resolve_step(ref: str) -> Step[Any]:
    """`module:qualname` or `/path/file.py:qualname` -> the Step object."""
    where, _, qual = ref.rpartition(":")
    module = (
        load_module_from_path(Path(where))
        if where.endswith(".py")
        else importlib.import_module(where)
    )
    obj: Any = module
    for part in qual.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, Step):
        raise ExecutorError(f"{ref} is not a step")
    return obj


# -- execution --------------------------------------------------------------------------


def revalidate_params(step: Step[Any], params: dict[str, Any]) -> dict[str, Any]:
    """Params that crossed a JSON boundary, validated back into their annotated types."""
    args = step.arguments
    out = {}
    for name, value in params.items():
        if name not in args:
            raise ParamError(f"step '{step.name}' has no parameter '{name}'")
        out[name] = validate_value(
            args[name].annotation, value, f"step '{step.name}' parameter '{name}'"
        )
    return out


def _load_inputs(
    inv: StepInvocation, artifacts: ArtifactStore, memo: dict[str, Any] | None
) -> dict[str, Any]:
    return {arg: _load(ref, artifacts, memo) for arg, ref in inv.inputs.items()}


def _load(ref: ArtifactRef, artifacts: ArtifactStore, memo: dict[str, Any] | None) -> Any:
    """One input: from `memo` when this process holds it, a list ref item by item."""
    if memo is not None and ref.hash in memo:
        return memo[ref.hash]
    if ref.items is not None and memo is not None:
        values = [_load(i, artifacts, memo) for i in ref.items]
        return tuple(values) if ref.type == "builtins:tuple" else values
    return artifacts.get(ref)


def _split_outputs(step: Step[Any], name: str, value: Any) -> list[Any]:
    n = len(step.outputs)
    if n == 1:
        return [value]
    if not isinstance(value, tuple) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, tuple) else f"a {type(value).__name__}"
        raise ArtifactError(f"step '{name}' declares {n} outputs but returned {got}")
    return list(value)


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = getattr(cls, "__module__", "")
    qual = getattr(cls, "__qualname__", cls.__name__)
    return qual if module in ("builtins", "__main__") or not module else f"{module}.{qual}"


def pack_error(exc: BaseException) -> tuple[str, str]:
    """A user exception as plain text `(message, traceback)`; never raises, whatever the
    exception's `__str__`, `__repr__` or traceback does."""
    try:
        text = str(exc)
    except Exception as bad:  # noqa: BLE001 - user code: its __str__ may do anything
        text = f"<its message could not be printed: {type(bad).__name__} in __str__>"
        message = f"{type(exc).__name__}: {text}"
    else:
        message = text if isinstance(exc, OrchestratorError) else f"{type(exc).__name__}: {text}"
    try:
        tb = "".join(traceback.format_exception(exc))
    except Exception as bad:  # noqa: BLE001 - a broken __cause__ chain, a hostile frame
        tb = f"{_type_name(exc)} (its traceback could not be formatted: {type(bad).__name__})"
    return message, tb


def _tracker(step: str, store: ArtifactStore) -> Tracker:
    """The step's tracker: logged artifacts go where its outputs go."""
    return Tracker(
        step, put=lambda value: store.put(value, inline=False).to_json(), canonical=canonical
    )


def _tracked(tracker: Tracker | None) -> dict[str, Any] | None:
    return tracker.tracked.to_json() if tracker is not None and tracker.tracked else None


def store_outputs(
    result: StepResult,
    inv: StepInvocation,
    store: ArtifactStore,
    t0: float,
    prepared: list[Prepared | ArtifactRef] | None = None,
) -> StepResult:
    """A deferred success (`execute(..., defer=True)`) with its values stored: each output
    written, hashed and in place; a failed write fails the step as it would have inline.
    `prepared` are the outputs already hashed (`ArtifactStore.prepare`) or stored (a
    ref), one per value. `t0` is when the write was handed off: its wait counts in the
    step's duration."""
    values = result.values or []
    try:
        if prepared is None:
            refs = [store.put(v, inv.serializer) for v in values]
        else:
            refs = [p if isinstance(p, ArtifactRef) else store.put_prepared(p) for p in prepared]
    except Exception as exc:  # noqa: BLE001 - the boundary returns failures as data
        return write_failed(result, exc, t0)
    took = result.duration + time.perf_counter() - t0
    return dataclasses.replace(result, outputs=refs, duration=took)


def write_failed(result: StepResult, exc: BaseException, t0: float) -> StepResult:
    """The failure of a deferred success whose outputs could not be stored."""
    message, tb = pack_error(exc)
    took = result.duration + time.perf_counter() - t0
    return StepResult(False, [], message, tb, result.log, took, tracked=result.tracked)


def execute(
    inv: StepInvocation,
    step: Step[Any],
    artifacts: ArtifactStore,
    *,
    memo: dict[str, Any] | None = None,
    registry_factory: Callable[[], Registry] | None = None,
    echo: Callable[..., Any] | None = None,
    out: ArtifactStore | None = None,
    defer: bool = False,
) -> StepResult:
    """Run one attempt; outputs go to `out` (default: `artifacts`, where inputs are read).
    With `defer`, a success comes back with its values and no outputs yet: the caller
    stores them with `store_outputs` (in the background, see `artifacts.writer`)."""
    install_capture()
    folder = _live_dirs.get(inv.run_id)
    lines = _Lines(live_log_file(folder, inv.step) if folder is not None else None)
    t0 = time.perf_counter()
    sink_token = _sink.set(lines)
    ctx = RunContext(
        run_id=inv.run_id,
        step=inv.step,
        pipeline=inv.pipeline,
        params=inv.pipeline_params,
        input_hashes={k: r.hash for k, r in inv.inputs.items()},
        log=StepLog(lines, echo),
        attempt=inv.attempt,
        registry_factory=registry_factory,
    )
    ctx.tracker = _tracker(inv.step, out or artifacts)
    ctx_token = activate(ctx)
    try:
        kwargs = _load_inputs(inv, artifacts, memo)
        kwargs.update(inv.params)
        value = step.fn(**kwargs)
        values = _split_outputs(step, inv.step, value)
        values = ctx.tracker.returned(values, step.kind)
        refs = [] if defer else [(out or artifacts).put(v, inv.serializer) for v in values]
        return StepResult(
            True,
            refs,
            None,
            None,
            "".join(lines),
            time.perf_counter() - t0,
            values if memo is not None or defer else None,
            _tracked(ctx.tracker),
        )
    except BaseException as exc:  # noqa: BLE001 - the boundary returns failures as data
        if (
            isinstance(exc, KeyboardInterrupt | SystemExit)
            and threading.current_thread() is threading.main_thread()
        ):
            raise
        message, tb = pack_error(exc)
        took = time.perf_counter() - t0
        return StepResult(
            False, [], message, tb, "".join(lines), took, tracked=_tracked(ctx.tracker)
        )
    finally:
        deactivate(ctx_token)
        _sink.reset(sink_token)
        lines.close()
