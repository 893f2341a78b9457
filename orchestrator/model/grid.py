"""Sweep grids: the axes a sweep varies and the combinations it runs.

An axis is one parameter path (`train.C`, a pipeline parameter `C`, a field
`train.params.alpha`) and the values it takes, written as on the command line:

* `0.1,1,10`: a list of values (commas inside `[...]`, `{...}` or quotes do not split);
* `LO..HI`: a range; integer ends (`1..8`) make an integer range, which a grid lists
  in full and `--random` draws from; other ends (`0.01..10`) a float range, drawn
  uniformly by `--random` only;
* `log:LO..HI`: a range drawn log-uniformly (integer ends draw integers).

From Python an axis may also be a list (or tuple, or `range`) of typed values.

`combinations(axes)` is the full grid, the first axis varying slowest; `sample(axes, n,
seed)` draws `n` distinct combinations reproducibly from a seed (without replacement
when every axis is a list). Values typed on the command line stay `CliText`, so the
pipeline's builder reads them strictly for the parameter's type and names the path in
its error. No I/O.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random as _random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.errors import ParamError
from orchestrator.model.params import CliText

_RANGE = re.compile(r"^\s*(?P<log>log:)?\s*(?P<lo>[-+0-9.eE]+)\s*\.\.\s*(?P<hi>[-+0-9.eE]+)\s*$")
_INT = re.compile(r"^[-+]?\d+$")
_OPEN, _CLOSE = "[{(", "]})"


@dataclasses.dataclass(frozen=True)
class Span:
    """A numeric range of an axis: `lo..hi`, log-scaled or not, of integers or floats."""

    lo: float
    hi: float
    log: bool = False
    integer: bool = False

    def draw(self, rng: _random.Random) -> int | float:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.lo), math.log(self.hi)))
        else:
            value = rng.uniform(self.lo, self.hi)
        if self.integer:
            return min(max(round(value), int(self.lo)), int(self.hi))
        return float(f"{value:.6g}")


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept parameter path: its listed values, or a span to draw from."""

    path: str
    spec: Any  # as given: the text after '=' or the Python list
    values: tuple[Any, ...] = ()
    span: Span | None = None

    def listed(self) -> tuple[Any, ...]:
        """Every value a grid takes on this axis; a float span has no such list."""
        if self.span is None:
            return self.values
        if self.span.integer and not self.span.log:
            return tuple(CliText(str(v)) for v in range(int(self.span.lo), int(self.span.hi) + 1))
        raise ParamError(
            f"grid {self.path}={self.spec}: a range like this is drawn at random; use "
            f"--random N (random=N), or list the values (e.g. {self.path}=0.1,1,10)"
        )


def parse_axis(path: str, spec: Any) -> Axis:
    """An axis from its CLI text (`0.1,1,10`, `1..8`, `log:0.01..10`) or a Python list."""
    if any(not part for part in path.split(".")) or not path.strip():
        raise ParamError(f"grid key {path!r} is not a parameter path (e.g. train.C)")
    if isinstance(spec, range | list | tuple):
        if not spec:
            raise ParamError(f"grid {path}: no values")
        return Axis(path, list(spec), tuple(spec))
    if not isinstance(spec, str):
        raise ParamError(
            f"grid {path}: expected a list of values or text such as '0.1,1,10' or "
            f"'log:0.01..10', got {type(spec).__name__}"
        )
    if m := _RANGE.match(spec):
        return Axis(path, spec, span=_span(path, spec, m))
    values = tuple(CliText(v) for v in _split(spec))
    if not values or any(not v.strip() for v in values):
        raise ParamError(f"grid {path}={spec}: an empty value; list values as A,B,C")
    return Axis(path, spec, values)


def _span(path: str, spec: str, m: re.Match[str]) -> Span:
    try:
        lo, hi = float(m["lo"]), float(m["hi"])
    except ValueError:
        raise ParamError(f"grid {path}={spec}: the ends of a range must be numbers") from None
    log = bool(m["log"])
    if not lo < hi:
        raise ParamError(f"grid {path}={spec}: a range LO..HI needs LO < HI")
    if log and lo <= 0:
        raise ParamError(f"grid {path}={spec}: a log range needs ends above 0")
    integer = bool(_INT.match(m["lo"]) and _INT.match(m["hi"]))
    return Span(lo, hi, log, integer)


def _split(text: str) -> list[str]:
    """`a,[1,2],"x,y"` -> `a`, `[1,2]`, `"x,y"`: commas at depth 0 outside quotes split."""
    parts, depth, quote, current = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += ch
    parts.append(current.strip())
    return parts


def parse_grid(grid: Mapping[str, Any] | Sequence[str]) -> list[Axis]:
    """Axes from a mapping `{path: spec}` or `--grid PATH=SPEC` items."""
    if isinstance(grid, Mapping):
        items = list(grid.items())
    else:
        items = []
        for item in grid:
            path, sep, spec = str(item).partition("=")
            if not sep or not path.strip():
                raise ParamError(f"--grid expects PATH=VALUES, got {item!r}")
            items.append((path.strip(), spec))
    if not items:
        raise ParamError("a sweep needs at least one grid axis, e.g. --grid train.C=0.1,1,10")
    axes = [parse_axis(path, spec) for path, spec in items]
    seen: set[str] = set()
    for axis in axes:
        if axis.path in seen:
            raise ParamError(f"grid {axis.path}: given twice; list all its values in one axis")
        seen.add(axis.path)
    return axes


def combinations(axes: list[Axis]) -> list[dict[str, Any]]:
    """The full grid: one `{path: value}` per combination, the first axis slowest."""
    lists = [axis.listed() for axis in axes]
    return [
        {a.path: v for a, v in zip(axes, values, strict=True)}
        for values in itertools.product(*lists)
    ]


def sample(axes: list[Axis], n: int, seed: int) -> list[dict[str, Any]]:
    """`n` distinct combinations drawn with `random.Random(seed)`: the same seed, the same."""
    if n < 1:
        raise ParamError(f"--random expects a number of combinations >= 1, got {n}")
    rng = _random.Random(seed)
    if all(axis.span is None for axis in axes):
        full = combinations(axes)
        return [full[i] for i in rng.sample(range(len(full)), min(n, len(full)))]
    out: dict[str, dict[str, Any]] = {}
    for _ in range(n * 20):
        combo = {a.path: _draw(a, rng) for a in axes}
        out.setdefault(repr(sorted(combo.items())), combo)
        if len(out) == n:
            break
    return list(out.values())


def _draw(axis: Axis, rng: _random.Random) -> Any:
    if axis.span is None:
        return axis.values[rng.randrange(len(axis.values))]
    return CliText(str(axis.span.draw(rng)))
