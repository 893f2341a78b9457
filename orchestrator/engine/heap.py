"""The cyclic garbage collector during a run.

A full collection walks every tracked object of the process. An orchestrator runs in a
process that already holds a large heap (the interpreter's modules, pandas, pyarrow, a
notebook's data), and a run makes many small objects (a 10,000-element map makes a state,
a key and a row per child), so Python's collector runs full collections during the run
that walk that old heap again and again: a fifth to a third of a cached child's cost
(`bench/map.py`).

`frozen_heap()` sets what the process held when the outermost run began aside
(`gc.freeze`) and puts it back when that run ends (`gc.unfreeze`). Both are O(1): they
move the collector's lists, they visit no object. Objects the run makes, including
the steps' garbage, are collected as before; garbage that existed before the run is
collected after it. A process that froze its heap itself (a server that forks
workers) is left as it is. Runs in threads of one process share one freeze, undone when
the last of them ends.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0  # runs inside `frozen_heap` now
_ours = False  # the freeze in force is the one `frozen_heap` made


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    global _depth, _ours
    with _lock:
        if _depth == 0 and gc.isenabled() and gc.get_freeze_count() == 0:
            gc.freeze()
            _ours = True
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _ours:
                _ours = False
                gc.unfreeze()
