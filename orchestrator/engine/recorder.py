"""The recorder: the only code of the engine that knows the store's column names.

It turns what happens to a step (running, cached, succeeded, failed, skipped) into the
rows of a `Batch`: step-run inserts and updates, artifact rows and cache entries, and one attempt
row per attempt (inserted `running` when it starts, updated when it ends, a failed one
with its own error, traceback and log, so a retry loses nothing), and what a succeeded
step, or a failed step's last attempt, tracked (metrics, parameters, named artifacts:
`tracking`). It keeps one batch, the changes not yet committed; `flush` commits it in
one transaction and starts a new one. A step that starts and ends within one batch is
written as one step-run insert and one attempt insert in their final state: a row
inserted in this batch is changed in place, never inserted and then updated.

The engine flushes before a step starts whose parent is in `finished` (recorded
succeeded or cached in this batch), when the batch is `due` (its first change is
`window` seconds old), before it waits idle for a step, and at the end of the run.
Rows of one batch are committed together and batches in order, so a step is never
recorded finished before the steps whose outputs it read, nor started before they are
recorded: a crash loses at most the batch in flight, never a step recorded finished.
"""

from __future__ import annotations

import time
from typing import Any

from orchestrator.artifacts.store import ArtifactRef
from orchestrator.cache.keys import KeyParts
from orchestrator.engine.conditions import by_condition
from orchestrator.engine.report import StepReport
from orchestrator.execution.worker import StepResult
from orchestrator.state import StepState
from orchestrator.store.batch import UPDATE_COLS
from orchestrator.store.metadata import Batch, MetadataStore, now
from orchestrator.tracking import Tracked


def _text(value: str | None) -> str | None:
    """Text as every database stores it (PostgreSQL rejects NUL characters)."""
    return value.replace("\x00", "\\x00") if value else value


CACHED_SHARE = 25
"""Cache hits one batch holds where batches are sent and not waited for (PostgreSQL's)."""


class Recorder:
    """`names[step]` are the step's output names: each recorded output carries its name,
    so `orch show`, the UI and the Python API read them without loading the pipeline."""

    def __init__(
        self,
        store: MetadataStore,
        run_id: str,
        pipeline: str,
        names: dict[str, list[str]] | None = None,
    ) -> None:
        self.store, self.run_id, self.pipeline = store, run_id, pipeline
        self.names = names or {}
        self.batch = Batch()
        self.since: float | None = None  # when the batch's first change was made
        self.finished: set[str] = set()  # steps recorded succeeded or cached in the batch
        self._steps: dict[str, dict[str, Any]] = {}  # step-run inserts of this batch
        self._attempts: dict[tuple[str, int], dict[str, Any]] = {}  # attempt inserts

    def _params(self, parts: KeyParts) -> Any:
        """The canonical parameters of a key (`KeyMaker.params` made them canonical): one
        object for the keys that share theirs (a mapped step's children), which the row
        encoder then encodes once."""
        return parts.params

    def _named(self, step: str, outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = self.names.get(step, [])
        if len(outputs) == len(names):
            for o, n in zip(outputs, names, strict=True):
                if o.get("name") != n:
                    break
            else:
                return outputs  # named already (a cache entry's outputs): shared, not copied
        return [o | {"name": n} for o, n in zip(outputs, names, strict=False)] + [
            dict(o) for o in outputs[len(names) :]
        ]

    def flush(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, Batch()
            self._steps, self._attempts, self.since = {}, {}, None
            self.finished = set()
            self.store.write(batch, fast=True)

    def due(self, window: float) -> float | None:
        """Seconds until the batch is `window` old (<= 0: flush now); None when empty."""
        if not self.batch:
            self.since = None
            return None
        t = time.perf_counter()
        if self.since is None:
            self.since = t
        return self.since + window - t

    def _insert_step(self, row: dict[str, Any]) -> None:
        self.batch.step_inserts.append(row)
        self._steps[row["name"]] = row

    def _update_step(self, row: dict[str, Any]) -> None:
        """Change a step run: in place when its insert is in this batch."""
        fresh = self._steps.get(row["name"])
        if fresh is None:
            self.batch.step_updates.append(row)
        else:  # as the UPDATE would change it (a retry keeps its first start)
            fresh.update({c: row[c] for c in UPDATE_COLS if c in row})

    def running(
        self, rep: StepReport, parts: KeyParts, inputs: dict[str, ArtifactRef], attempt: int
    ) -> None:
        row = {
            "run_id": self.run_id,
            "name": rep.name,
            "state": StepState.RUNNING,
            "attempts": attempt,
            "started_at": now(),
            "cache_key": parts.key,
            "reason": rep.reason,
            "inputs": {k: r.hash for k, r in inputs.items()},
        }
        started = {
            "run_id": self.run_id,
            "step": rep.name,
            "attempt": attempt,
            "state": StepState.RUNNING,
            "started_at": row["started_at"],
        }
        self.batch.attempt_inserts.append(started)
        self._attempts[(rep.name, attempt)] = started
        if attempt == 1:
            self._insert_step(row | {"kind": rep.kind, "params": self._params(parts)})
            return
        self._update_step(
            row
            | {
                "ended_at": None,
                "duration": None,
                "outputs": None,
                "error": _text(rep.error),
                "log": None,
            }
        )

    def cached(self, rep: StepReport, parts: KeyParts, outputs: list[dict[str, Any]]) -> None:
        stamp = now()
        self.finished.add(rep.name)
        self.batch.step_inserts.append(
            {
                "run_id": self.run_id,
                "name": rep.name,
                "kind": rep.kind,
                "state": StepState.CACHED,
                "attempts": 0,
                "started_at": stamp,
                "ended_at": stamp,
                "duration": 0.0,
                "cache_key": parts.key,
                "reason": rep.reason,
                "params": self._params(parts),
                "inputs": parts.inputs,
                "outputs": self._named(rep.name, outputs),
            }
        )
        if len(self.batch.step_inserts) >= CACHED_SHARE and self.store.writes_unwaited():
            self.flush()  # the server stores these while the next hits are resolved

    def succeeded(
        self, rep: StepReport, parts: KeyParts, attempt: int, result: StepResult
    ) -> dict[str, Any]:
        """Record a success and its artifacts; return the cache entry it makes."""
        outs = self._named(rep.name, [o.to_json() for o in result.outputs])
        stamp = now()
        self.finished.add(rep.name)
        self._update_step(
            {
                "run_id": self.run_id,
                "name": rep.name,
                "state": StepState.SUCCEEDED,
                "attempts": attempt,
                "ended_at": stamp,
                "duration": result.duration,
                "cache_key": parts.key,
                "reason": rep.reason,
                "outputs": outs,
                "error": None,
                "log": _text(result.log),
                "inputs": parts.inputs,
            }
        )
        self._attempt_ended(rep.name, attempt, StepState.SUCCEEDED, result.duration, log=result.log)
        self._artifacts(rep.name, [o for o in result.outputs if o.items is None], stamp)
        self.tracking(rep.name, result)
        return self._cache_entry(rep.name, parts, outs, stamp)

    def elements(self, step: str, refs: list[ArtifactRef]) -> None:
        """The artifacts a mapped step stored for its elements."""
        self._artifacts(step, refs, now())

    def _artifacts(self, step: str, refs: list[ArtifactRef], stamp: Any) -> None:
        for o in refs:
            self.batch.artifacts[o.hash] = {
                "hash": o.hash,
                "serializer": o.serializer,
                "type": o.type,
                "size": o.size,
                "run_id": self.run_id,
                "step": step,
                "created_at": stamp,
                "inline": None if o.data is None else o.data.decode(),
            }

    def _attempt_ended(
        self,
        step: str,
        attempt: int,
        state: StepState,
        duration: float | None,
        *,
        error: str | None = None,
        traceback: str | None = None,
        log: str | None = None,
    ) -> None:
        row = {
            "run_id": self.run_id,
            "step": step,
            "attempt": attempt,
            "state": state,
            "ended_at": now(),
            "duration": duration,
            "error": _text(error),
            "traceback": _text(traceback or None),
            "log": _text(log),
        }
        fresh = self._attempts.get((step, attempt))
        if fresh is None:
            self.batch.attempt_updates.append(row)
        else:
            fresh.update(row)

    def retrying(self, step: str, attempt: int, result: StepResult, duration: float) -> None:
        """Record a failed attempt that will be retried: the step run stays running."""
        self._attempt_ended(
            step,
            attempt,
            StepState.FAILED,
            duration,
            error=result.error or "failed",
            traceback=result.traceback,
            log=result.log,
        )

    def _artifact(self, step: str, ref: dict[str, Any], stamp: Any) -> None:
        self.batch.artifacts[ref["hash"]] = {
            "hash": ref["hash"],
            "serializer": ref["serializer"],
            "type": ref["type"],
            "size": ref["size"],
            "run_id": self.run_id,
            "step": step,
            "created_at": stamp,
            "inline": ref.get("inline"),
        }

    def tracking(self, step: str, result: StepResult) -> None:
        """What the step logged: metric points, parameters and named artifacts."""
        data = Tracked.from_json(result.tracked)
        if not data:
            return
        stamp, key = now(), {"run_id": self.run_id, "step": step}
        self.batch.add(
            "run_metrics",
            [
                key
                | {"name": m["name"], "position": m.get("step"), "value": m["value"]}
                | {"logged_at": stamp}
                for m in data.metrics
            ],
        )
        self.batch.add("run_params", [key | {"name": k, "data": v} for k, v in data.params.items()])
        self.batch.add(
            "run_artifacts", [key | {"name": a["name"], "hash": a["hash"]} for a in data.artifacts]
        )
        for a in data.artifacts:
            self._artifact(step, a, stamp)

    def _cache_entry(
        self, name: str, parts: KeyParts, outs: list[dict[str, Any]], stamp: Any
    ) -> dict[str, Any]:
        entry = {
            "cache_key": parts.key,
            "pipeline": self.pipeline,
            "step": name,
            "outputs": outs,
            "code": parts.code,
            "params": parts.params,
            "inputs": parts.inputs,
            "run_id": self.run_id,
            "created_at": stamp,
        }
        self.batch.cache_entries.append(entry)
        return entry

    def failed(
        self, rep: StepReport, parts: KeyParts | None, log: str | None, traceback: str
    ) -> None:
        """Record a failure; a step that never started (attempts 0) gets its row here."""
        row = {
            "run_id": self.run_id,
            "name": rep.name,
            "state": StepState.FAILED,
            "attempts": rep.attempts,
            "ended_at": now(),
            "duration": rep.duration,
            "cache_key": parts.key if parts else None,
            "reason": rep.reason,
            "outputs": None,
            "error": _text((rep.error or "") + traceback),
            "log": _text(log),
            "inputs": parts.inputs if parts else None,
        }
        if rep.attempts == 0:
            self._insert_step(row | {"kind": rep.kind, "started_at": now()})
            return
        self._update_step(row)
        self._attempt_ended(
            rep.name,
            rep.attempts,
            StepState.FAILED,
            rep.duration,
            error=rep.error or "failed",
            traceback=traceback.strip(),
            log=log,
        )

    def abandoned(
        self, rep: StepReport, parts: KeyParts, attempt: int, cause: str, end_attempt: bool = True
    ) -> None:
        """A step that started on the values of `cause`, whose write then failed: skipped
        as if it had never started, its attempt with it unless that attempt had already
        ended (a failure waiting for its retry); `rep` is its skipped report."""
        error = f"skipped: upstream step '{cause}' failed"
        row = {
            "run_id": self.run_id,
            "name": rep.name,
            "state": StepState.SKIPPED,
            "attempts": attempt,
            "ended_at": now(),
            "duration": rep.duration,
            "cache_key": parts.key,
            "reason": rep.reason,
            "outputs": None,
            "error": error,
            "log": None,
            "inputs": parts.inputs,
        }
        self._update_step(row)
        if end_attempt:
            self._attempt_ended(rep.name, attempt, StepState.SKIPPED, rep.duration, error=error)

    def skipped(self, rep: StepReport, cause: str) -> None:
        self.batch.step_inserts.append(
            {
                "run_id": self.run_id,
                "name": rep.name,
                "kind": rep.kind,
                "state": StepState.SKIPPED,
                "attempts": 0,
                "reason": rep.reason,
                "error": None
                if by_condition(rep.reason)
                else f"skipped: upstream step '{cause}' failed",
            }
        )
