"""Steps a prefetch found with no cache entry at all: they miss with no read for a while.

A run's prefetch reads the newest entry of each of its steps (`prefetch` on both hot
paths). A step with none then misses its lookups with no read for `WINDOW` seconds after
that read (an entry another process commits in that window is not seen, as if committed
just after the lookup); past the window, one read renews the answer for every such step
of the pipeline at once. An entry written through the same path is never missed: its
step leaves the set as the entry is written. So a first run reads nothing per step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

WINDOW = 1.0  # seconds a prefetch's "this step has no entry" answers lookups


class AbsentSteps:
    def __init__(self) -> None:
        self.steps: set[tuple[str, str]] = set()  # (pipeline, step) with no entry
        self.until = 0.0  # time.monotonic() up to which `steps` answers

    def note(
        self, pipeline: str, asked: Iterable[str], found: Iterable[str], read_at: float,
        window: float,
    ) -> None:  # fmt: skip
        """A read at `read_at` (taken before it) asked for `asked` and found `found`."""
        self.steps = {(pipeline, s) for s in asked} - {(pipeline, s) for s in found}
        self.until = read_at + window

    def known(self, pipeline: str, step: str, renew: Callable[[str, list[str]], Any]) -> bool:
        """Whether `step` still has no entry: by the last answer if it is recent enough,
        else by a new one (`renew(pipeline, steps)` reads and `note`s it)."""
        if (pipeline, step) not in self.steps:
            return False
        if time.monotonic() > self.until:
            renew(pipeline, sorted(s for p, s in self.steps if p == pipeline))
        return (pipeline, step) in self.steps

    def written(self, entries: Iterable[dict[str, Any]]) -> None:
        """Entries this path writes: their steps have one now."""
        if self.steps:
            self.steps.difference_update((e["pipeline"], e["step"]) for e in entries)
