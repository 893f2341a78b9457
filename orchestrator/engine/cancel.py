"""Cancellation of a running run: a request recorded in the store, honoured by its engine.

Someone (`orch cancel RUN`, the UI) stamps the run's `cancel_requested_at`; the engine
loop asks `CancelWatch.requested()` between rounds and, because it waits for attempts
at most `POLL` seconds at a time, while steps run. The store is read at most once per
`POLL` seconds, so a run of many quick rounds pays nothing for it. Once a request has
been seen it stays seen: the loop then stops starting steps, asks each executor to kill
its running attempts, and the run is recorded `cancelled` (its running step runs and
attempts `interrupted`).
"""

from __future__ import annotations

import time

from orchestrator.store.metadata import MetadataStore

POLL = 0.5
"""Seconds between two reads of a run's cancel request (and the longest wait for steps)."""


class CancelWatch:
    def __init__(self, store: MetadataStore, run_id: str, poll: float = POLL) -> None:
        self.store, self.run_id, self.poll = store, run_id, poll
        self.seen = False
        self._next = time.monotonic() + poll

    def requested(self) -> bool:
        """Whether the run was asked to stop (the store is read once per `poll` at most)."""
        if self.seen or time.monotonic() < self._next:
            return self.seen
        self._next = time.monotonic() + self.poll
        self.seen = self.store.cancel_requested(self.run_id)
        return self.seen
