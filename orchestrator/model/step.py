"""Steps: decorated Python functions with typed inputs, one or more typed outputs and options.

A `Step` wraps a function. Its signature is the contract:

* every argument is either an *input* (bound, when the pipeline is built, to another
  step's output) or a *parameter* (bound to a plain value, validated by pydantic
  against the argument's type hint);
* the return hint is the output type; `-> tuple[A, B]` declares two outputs, which the
  pipeline unpacks as `a, b = split(df)`. Outputs can be named, either
  `-> tuple[Annotated[A, "train"], Annotated[B, "test"]]` or a NamedTuple return type
  with two or more fields (whose call then returns that NamedTuple of handles).

An input typed `list[T]` (or `tuple[T, ...]`) may be bound to a list of outputs,
`pick_best([fit(a), fit(b)])`: an `OutputList`. `step.map(item=shards, **fixed)` calls a
step once per element of a list produced at run time (see `Step.map`): its node is
*mapped* and each of its outputs is a `list[...]` of the elements' outputs.

A call is named after its step; `step.named("x")(...)` (or `_name="x"`) names it, and
a second unnamed call of the same step in one pipeline is `<step>_2`. A name follows
`NAME_RULE`: the dot is reserved for the namespaces of sub-pipelines (`ds.train`).
`_when=gate` (or `step.when(gate)(...)`) makes a call conditional (`model.conditions`).

Calling a step while a pipeline is being built records a node and returns lazy
`Output` handles; calling it anywhere else just calls the function, so steps stay
unit-testable as plain functions. This module does no I/O.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from orchestrator.errors import PipelineError
from orchestrator.state import STEP_KINDS

F = TypeVar("F", bound=Callable[..., Any])
_EMPTY = inspect.Parameter.empty


class HashContent:
    """Marker for `Annotated[Path, HashContent()]`: the file's bytes enter the cache key."""

    def __repr__(self) -> str:
        return "HashContent()"


FileInput = typing.Annotated[Path, HashContent()]
"""A parameter naming a file whose *content* is part of the cache key (e.g. an ingested CSV)."""


NAME_RULE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
RULE_TEXT = (
    "a name starts with a letter or '_' and holds only letters, digits, '_' and '-'; "
    "the dot is reserved for sub-pipeline namespaces (e.g. 'data_science.train')"
)


def name_problem(name: Any, what: str) -> str | None:
    """Why `name` is not a valid name for `what` (e.g. "step call"), or None."""
    if isinstance(name, str) and NAME_RULE.fullmatch(name):
        return None
    return f"{what} name {name!r} is not valid: {RULE_TEXT}"


@dataclasses.dataclass(frozen=True, slots=True)
class Output:
    """A lazy handle on one output of a node, returned while a pipeline is being built."""

    node: str
    index: int = 0
    type: Any = Any
    name: str | None = None

    @property
    def label(self) -> str:
        """`split.test` for a named output, `split[1]` for an unnamed second one."""
        if self.name:
            return f"{self.node}.{self.name}"
        return f"{self.node}[{self.index}]" if self.index else self.node

    def __repr__(self) -> str:
        return f"Output({self.label!r})"

    def __iter__(self) -> typing.Iterator[Any]:
        raise PipelineError(
            f"step '{self.node}' has a single output and cannot be unpacked; "
            "declare `-> tuple[A, B]` to give it several outputs"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class OutputList:
    """Several outputs bound to one `list[T]` / `tuple[T, ...]` input, in order."""

    items: tuple[Output, ...]
    as_tuple: bool = False

    @property
    def label(self) -> str:
        return "[" + ", ".join(o.label for o in self.items) + "]"


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Each(Output):
    """Inside the body of a mapped sub-pipeline (`Pipeline.map`), a list output that
    stands for *one element*: a step call given one maps over it, and its outputs are
    `Each` too. The caller gets plain (list) `Output`s back."""

    def plain(self) -> Output:
        return Output(self.node, self.index, self.type, self.name)


@dataclasses.dataclass(frozen=True, slots=True)
class Fixed:
    """`fixed(x)`: in `step.map(...)`, pass `x` whole to every element instead of mapping."""

    value: Any


def fixed(value: Any) -> Fixed:
    """Mark a `step.map(...)` argument as passed whole to every element (not mapped)."""
    return Fixed(value)


Input = Output | OutputList


def is_input(value: Any) -> bool:
    """Whether a binding is an edge (one output or a list of outputs), not a plain value."""
    return isinstance(value, Output | OutputList)


def sources(value: Input) -> tuple[Output, ...]:
    """The outputs a binding reads."""
    return value.items if isinstance(value, OutputList) else (value,)


@dataclasses.dataclass(slots=True)
class Node:
    """One call of a step in a pipeline: the step, its name and its argument bindings.

    A mapped node (`mapped` names the arguments it maps over) runs once per element at
    run time; each of its outputs is then a list, `list[T]` for a step returning `T`."""

    name: str
    step: Step[Any]
    bindings: dict[str, Any]
    explicit_name: bool = False
    problems: list[str] = dataclasses.field(default_factory=list)
    mapped: tuple[str, ...] = ()
    max_parallel: int | None = None
    inner: tuple[str, ...] = ()  # a map inside a mapped sub-pipeline: mapped twice
    condition: Any = None  # `_when=`; a `model.conditions.Condition` once the graph is built

    def inputs(self) -> dict[str, Input]:
        return {k: v for k, v in self.bindings.items() if is_input(v)}

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in self.bindings.items() if not is_input(v)}

    def output_type(self, index: int) -> Any:
        """The type of output `index` as its consumers see it (a list when mapped)."""
        t = self.step.outputs[index]
        if self.inner:
            return list[list[t]]  # type: ignore[valid-type]
        return list[t] if self.mapped else t  # type: ignore[valid-type]


class Recorder(Protocol):
    """What a step call needs from the pipeline being built (see `model.builder`)."""

    def add_step(
        self, step: Step[Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str | None
    ) -> Node: ...


_building: contextvars.ContextVar[Any] = contextvars.ContextVar("building", default=None)


def building() -> Any:
    """The builder of the pipeline being built in this context, or None."""
    return _building.get()


def set_builder(builder: Any) -> contextvars.Token[Any]:
    return _building.set(builder)


def reset_builder(token: contextvars.Token[Any]) -> None:
    _building.reset(token)


def default_output_names(count: int) -> list[str]:
    """`output` for a single output, `output_0`, `output_1`... for several unnamed ones."""
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def _declared_name(t: Any) -> str | None:
    if typing.get_origin(t) is typing.Annotated:
        return next((m for m in typing.get_args(t)[1:] if isinstance(m, str)), None)
    return None


def _is_namedtuple(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, tuple) and hasattr(t, "_fields")


@dataclasses.dataclass(frozen=True, slots=True)
class Argument:
    name: str
    annotation: Any
    default: Any = _EMPTY

    @property
    def required(self) -> bool:
        return self.default is _EMPTY


_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _tags(step: str, tags: Any) -> tuple[str, ...]:
    """Tags as a tuple of names (letters, digits, `_`, `-`, `.`; no commas: `--tags a,b`)."""
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise PipelineError(f"step '{step}': tags must be a tuple of strings, got {tags!r}")
    bad = [t for t in tags if not _TAG.fullmatch(t)]
    if bad:
        raise PipelineError(
            f"step '{step}': tag {bad[0]!r} is not a name (use letters, digits, '_', '-', '.')"
        )
    return tuple(dict.fromkeys(tags))


class Step(Generic[F]):
    """A typed step. Create with `@step`; call inside a `@pipeline` to wire it."""

    def __init__(
        self,
        fn: F,
        *,
        name: str | None = None,
        kind: str = "custom",
        retries: int = 0,
        retry_backoff: float = 1.0,
        timeout: float | None = None,
        cache: bool = True,
        version: str = "",
        hints: dict[str, Any] | None = None,
        tags: tuple[str, ...] | list[str] = (),
    ) -> None:
        problem = name_problem(name or fn.__name__, "step")
        if problem:
            raise PipelineError(problem)
        if kind not in STEP_KINDS:
            raise PipelineError(
                f"step '{name or fn.__name__}': kind '{kind}' is not one of {', '.join(STEP_KINDS)}"
            )
        if retries < 0 or retry_backoff < 0 or (timeout is not None and timeout <= 0):
            raise PipelineError(
                f"step '{name or fn.__name__}': retries and retry_backoff must be >= 0 and "
                f"timeout > 0 (got retries={retries}, retry_backoff={retry_backoff}, "
                f"timeout={timeout})"
            )
        self.fn = fn
        self.name = name or fn.__name__
        self.kind = kind
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.timeout = timeout
        self.cache = cache
        self.version = version
        self.hints = dict(hints or {})
        self.tags = _tags(self.name, tags)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__qualname__ = getattr(fn, "__qualname__", fn.__name__)
        self.__module__ = fn.__module__
        self.__wrapped__ = fn
        self._arguments: dict[str, Argument] | None = None
        self._outputs: list[Any] | None = None
        self._output_names: list[str | None] = []
        self._returns: Any = None

    # -- signature -------------------------------------------------------------------
    def _analyse(self) -> None:
        sig = inspect.signature(self.fn)
        try:
            hints = typing.get_type_hints(self.fn, include_extras=True)
        except Exception as exc:  # unresolved forward reference in user code
            raise PipelineError(f"step '{self.name}': cannot read its type hints: {exc}") from None
        args: dict[str, Argument] = {}
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise PipelineError(f"step '{self.name}': *args and **kwargs are not supported")
            args[p.name] = Argument(p.name, hints.get(p.name, Any), p.default)
        ret = hints.get("return", Any)
        names: list[str | None]
        if _is_namedtuple(ret) and len(ret._fields) > 1:
            fields = typing.get_type_hints(ret, include_extras=True)
            outputs = [fields.get(f, Any) for f in ret._fields]
            names, self._returns = list(ret._fields), ret
        elif (
            typing.get_origin(ret) is tuple
            and (targs := typing.get_args(ret))
            and targs[-1] is not Ellipsis
        ):
            outputs = list(targs)
            names = [_declared_name(t) for t in outputs]
        else:
            outputs, names = [ret], [_declared_name(ret)]
        self._check_output_names(names)
        self._arguments, self._outputs, self._output_names = args, outputs, names

    def _check_output_names(self, names: list[str | None]) -> None:
        given = [n for n in names if n is not None]
        for n in given:
            if problem := name_problem(n, f"step '{self.name}': output"):
                raise PipelineError(problem)
        if len(set(given)) != len(given):
            raise PipelineError(f"step '{self.name}': output names {given} are not unique")

    @property
    def arguments(self) -> dict[str, Argument]:
        if self._arguments is None:
            self._analyse()
        assert self._arguments is not None
        return self._arguments

    @property
    def outputs(self) -> list[Any]:
        if self._outputs is None:
            self._analyse()
        assert self._outputs is not None
        return self._outputs

    @property
    def output_names(self) -> list[str]:
        """Each output's name: the declared one, else `output` / `output_<i>`."""
        outputs = self.outputs
        defaults = default_output_names(len(outputs))
        return [n or d for n, d in zip(self._output_names, defaults, strict=True)]

    @property
    def declared_output_names(self) -> list[str | None]:
        """Each output's declared name, None where the return hint gives none."""
        self.outputs  # noqa: B018  (analyses the signature)
        return list(self._output_names)

    @property
    def ref(self) -> str:
        """Where a worker finds this step: `module:qualname`, or `/path/file.py:qualname`."""
        mod = sys.modules.get(self.fn.__module__)
        file = getattr(mod, "__file__", None)
        from_path = getattr(mod, "__orch_from_path__", False) or self.fn.__module__ == "__main__"
        if mod is not None and from_path and file:
            return f"{Path(file).resolve()}:{self.__qualname__}"
        return f"{self.fn.__module__}:{self.__qualname__}"

    # -- use -------------------------------------------------------------------------
    def with_options(self, **options: Any) -> Step[F]:
        """A copy of this step with some options changed, e.g. `train.with_options(retries=3)`."""
        current = {
            "name": self.name,
            "kind": self.kind,
            "retries": self.retries,
            "retry_backoff": self.retry_backoff,
            "timeout": self.timeout,
            "cache": self.cache,
            "version": self.version,
            "hints": self.hints,
            "tags": self.tags,
        }
        unknown = set(options) - set(current)
        if unknown:
            raise PipelineError(f"step '{self.name}': unknown options {sorted(unknown)}")
        return Step(self.fn, **{**current, **options})

    def named(self, name: str) -> Callable[..., Any]:
        """This step called under another name: `load.named("companies")(path=...)`."""
        if problem := name_problem(name, "step call"):
            raise PipelineError(f"step '{self.name}': {problem}")
        return functools.partial(self.__call__, _name=name)

    def when(self, condition: Any) -> Callable[..., Any]:
        """This step called under a condition: `deploy.when(gate)(model)` (see `_when`)."""
        return functools.partial(self.__call__, _when=condition)

    def __call__(
        self, *args: Any, _name: str | None = None, _when: Any = None, **kwargs: Any
    ) -> Any:
        builder: Recorder | None = _building.get()
        if builder is None:
            return self.fn(*args, **kwargs)
        node = builder.add_step(self, args, kwargs, _name)
        node.condition = _when
        each = tuple(k for k, v in node.bindings.items() if isinstance(v, Each))
        if each:  # inside a mapped sub-pipeline: one child per element
            node.mapped = each
            node.max_parallel = getattr(builder, "max_parallel", None)
        return self._handles(node, each=bool(each))

    def _handles(self, node: Node, *, each: bool = False) -> Any:
        kind = Each if each else Output
        outs = [
            kind(node.name, i, node.output_type(i), n) for i, n in enumerate(self._output_names)
        ]
        if self._returns is not None:
            return self._returns._make(outs)
        return tuple(outs) if len(outs) > 1 else outs[0]

    def map(
        self, *args: Any, _name: str | None = None, max_parallel: int | None = None, **kwargs: Any
    ) -> Any:
        """Call this step once per element of a list known only at run time.

        `train.map(shard=shards, features=X, C=1.0)` maps over every argument bound to a
        step output typed `list[...]`, `tuple[..., ...]` or `Any` (several are zipped and
        must have equal lengths); other step outputs, plain values and `fixed(x)` go whole
        to every element. When the lists are known, the run starts one child per element,
        `train[0]`, `train[1]`, ..., each cached by its element's content, so adding an
        element runs one more child. Every output of a mapped call is a list of the
        children's outputs, in element order (an empty list gives `[]`). `max_parallel`
        bounds how many children run at once.
        """
        builder: Recorder | None = _building.get()
        if builder is None:
            raise PipelineError(
                f"step '{self.name}': .map() wires a pipeline; call it inside a @pipeline body"
            )
        if max_parallel is not None and (not isinstance(max_parallel, int) or max_parallel < 1):
            raise PipelineError(
                f"step '{self.name}': max_parallel must be a positive integer, got {max_parallel!r}"
            )
        names = list(self.arguments)
        bound = dict(zip(names, args, strict=False))
        bound.update(kwargs)
        if any(isinstance(v, Each) for v in bound.values()):
            return self._map_each(bound, _name, max_parallel, len(args) > len(names))
        mapped = tuple(k for k, v in bound.items() if isinstance(v, Output) and listish(v.type))
        plain = {k: (v.value if isinstance(v, Fixed) else v) for k, v in bound.items()}
        node = builder.add_step(self, (), plain, _name)
        node.mapped, node.max_parallel = mapped, max_parallel
        if len(args) > len(names):
            node.problems.append(
                f"step '{node.name}' takes {len(names)} arguments but {len(args)} were given "
                "positionally"
            )
        if not mapped:
            node.problems.append(
                f"step '{node.name}' .map() maps over nothing: bind an argument to a step "
                "output typed list[...] (other values go whole to every element)"
            )
        return self._handles(node)

    def _map_each(
        self, bound: dict[str, Any], name: str | None, max_parallel: int | None, extra: bool
    ) -> Any:
        """`.map()` inside a mapped sub-pipeline: per element of the outer list, once per
        element of the inner list (an element's own list): children `fit[i][j]`."""
        builder: Recorder = _building.get()
        each = tuple(k for k, v in bound.items() if isinstance(v, Each))
        inner = tuple(k for k in each if listish(_element(bound[k].type)))
        plain = {k: (v.value if isinstance(v, Fixed) else v) for k, v in bound.items()}
        node = builder.add_step(self, (), plain, name)
        node.mapped, node.inner = each, inner
        node.max_parallel = max_parallel or getattr(builder, "max_parallel", None)
        if extra:
            node.problems.append(f"step '{node.name}' got too many positional arguments")
        if not inner:
            node.problems.append(
                f"step '{node.name}' .map() inside a mapped sub-pipeline maps over nothing: "
                "bind an argument to a per-element value that is itself a list"
            )
        return self._handles(node, each=True)

    def __repr__(self) -> str:
        return f"<step {self.name} kind={self.kind}>"


def _element(t: Any) -> Any:
    """The element type of a list-like hint (`Any` when it does not say)."""
    while typing.get_origin(t) is typing.Annotated:
        t = typing.get_args(t)[0]
    args = typing.get_args(t)
    return args[0] if args else Any


def listish(t: Any) -> bool:
    """Whether an output of type `t` is mapped over by `Step.map` (see there)."""
    while typing.get_origin(t) is typing.Annotated:
        t = typing.get_args(t)[0]
    if t is Any:
        return True
    origin = typing.get_origin(t) or t
    return isinstance(origin, type) and issubclass(origin, list | tuple)


def step(
    fn: F | None = None,
    *,
    name: str | None = None,
    kind: str = "custom",
    retries: int = 0,
    retry_backoff: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    version: str = "",
    hints: dict[str, Any] | None = None,
    tags: tuple[str, ...] | list[str] = (),
) -> Any:
    """Declare a step. Use bare (`@step`) or with options (`@step(kind="train", retries=2)`).

    Options: `kind` (ingest, validate, feature, train, evaluate, deploy, custom); `retries`
    and `retry_backoff` (seconds, doubled on each attempt); `timeout` (seconds per attempt);
    `cache=False` to always run; `version`, a salt that invalidates earlier cache entries;
    `hints`, executor hints such as `{"executor": "process"}`; `tags`, names to select
    steps by in a partial run (`orch run T --tags fast`).
    """

    def wrap(f: F) -> Step[F]:
        return Step(
            f,
            name=name,
            kind=kind,
            retries=retries,
            retry_backoff=retry_backoff,
            timeout=timeout,
            cache=cache,
            version=version,
            hints=hints,
            tags=tags,
        )

    return wrap(fn) if fn is not None else wrap
