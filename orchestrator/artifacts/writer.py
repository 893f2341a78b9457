"""Background artifact writes: a step's outputs are stored while other steps run.

An in-process executor hands a finished step's outputs to a `BackgroundWriter` and goes
on with the next step; the writer's one thread stores them (`ArtifactStore.put`: one
serialization pass, hashed on the way, renamed into place) and then completes the
step's future. Invariants:

* a step's future completes only after every one of its output files is in place, so
  the engine, which records a step finished when its future completes, never records
  a step whose artifacts are not durable (a crash during a write leaves the step
  unfinished and no file but a temporary one);
* the values stay the objects the step returned: in-process children read them from
  the run's memory, never from the file being written;
* memory is bounded: at most `depth` writes wait; handing off one more blocks until a
  write has finished, so a fast producer of large outputs cannot pile them up;
* writes happen one at a time, in the order they were handed off;
* a write that fails (no serializer, disk full) completes the future with a failed
  result naming the reason, as a synchronous `put` would have failed the step.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

Job = Callable[[], None]

DEPTH = 2  # writes that may wait behind the one being written


class BackgroundWriter:
    """One daemon thread running handed-off writes in order, with a bounded queue."""

    def __init__(self, depth: int = DEPTH) -> None:
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=depth)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.handed = 0  # writes handed off so far (observable by tests and benches)

    def start(self) -> None:
        """Start the writer's thread (if it is not running), so the first write handed
        off begins at once."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._serve, daemon=True, name="orch-artifact-writer"
            )
            self._thread.start()

    def hand_off(self, job: Job) -> None:
        """Queue `job` (it must not raise); blocks while `depth` writes already wait."""
        with self._lock:
            self._start()
            self.handed += 1
        self._jobs.put(job)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def close(self) -> None:
        """Let the thread end after the writes already queued (it is a daemon thread)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._jobs.put(None)
            self._thread = None


def run_guarded(job: Callable[[], Any], on_error: Callable[[BaseException], None]) -> Job:
    """`job` as a writer job: an exception goes to `on_error`, never out of the thread."""

    def guarded() -> None:
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - reported through the step's future
            on_error(exc)

    return guarded
