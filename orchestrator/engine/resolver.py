"""The cache resolver: for a step and its key, a stored result to reuse, or why there is none.

Candidates, in order: the same step of the run being resumed (when its key is the same;
this holds even for `cache=False` steps), then the cache index (entries made earlier in
this run, then the store's). A candidate is taken only if every artifact it names is
present with the right hash; a cache entry that fails this is dropped from the store at
once (it would fail every later run too) and the step is recomputed with that reason.

A miss is explained: disabled by `cache=False`, or what differs from the closest earlier
entry of the same step (`explain_miss`). The resolver reads the store and never writes
a row other than dropping bad cache entries; it keeps `index`, the entries recorded by
this run, so a step repeated within one run is a hit before the batch is committed.

Reads: at its first lookup the resolver asks the store once for the entries likely to be
hit by the run's `steps` (`cache_prefetch`: each step's newest entry, so a re-run's hits
cost no read each, whatever the shape); any other key is one `cache_probe`, which on a
miss brings the history the miss is explained by. When many steps are ready at once (a
mapped step's children, a fan), `read_ahead` reads their keys' entries in one read, and
the histories of the steps whose key has none in one more; their lookups then read
nothing. (An entry another run commits after that read is not seen, as if committed just
after the lookup.)

Checks: where checking an artifact is a round trip (object storage), the entries read
ahead (prefetched, then asked for eagerly even on SQLite, and those `read_ahead` finds)
have their artifacts checked in the background at once, concurrently; a lookup takes the
verdict of its artifacts' checks (each used once, and the full check all the same: GET
and re-hash), so a cached chain waits for about one round trip, not one per step.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.artifacts.store import ArtifactRef, ArtifactStore
from orchestrator.cache.keys import KeyParts, explain_hit, explain_miss
from orchestrator.model.step import Step
from orchestrator.state import StepState
from orchestrator.store.metadata import MetadataStore

Entry = dict[str, Any]


def entry_refs(entry: Entry) -> list[ArtifactRef]:
    """The refs of `entry`'s outputs, parsed once per entry (verified, then recorded)."""
    refs = entry.get("refs")
    if refs is None:
        refs = entry["refs"] = [ArtifactRef.from_json(o) for o in entry["outputs"]]
    return refs


Reason = dict[str, Any]


class CacheResolver:
    def __init__(
        self,
        store: MetadataStore,
        artifacts: ArtifactStore,
        pipeline: str,
        resumed_from: str | None = None,
        warn: Callable[[str, str], None] | None = None,
        steps: Iterable[str] = (),
    ) -> None:
        self.store, self.artifacts, self.pipeline = store, artifacts, pipeline
        self.warn = warn
        self.steps = list(steps)
        self.prefetched: dict[str, Entry] | None = None
        self.index: dict[str, Entry] = {}
        self.resume: dict[str, Entry] = {}
        self._missed: list[Entry] | None = None
        self.ahead: dict[str, Entry] = {}  # entries read ahead, by key (`read_ahead`)
        self.absent: set[str] = set()  # keys read ahead and found without an entry
        self.histories: dict[str, list[Entry]] = {}  # their steps' histories, by step
        self._reasons: dict[tuple[Any, ...], tuple[Any, Reason]] = {}
        self.checks: dict[str, cf.Future[str | None]] = {}  # begun ahead, by artifact hash
        if resumed_from:
            for sr in store.step_runs(resumed_from):
                if sr["state"] in (StepState.SUCCEEDED, StepState.CACHED) and sr["outputs"]:
                    self.resume[sr["name"]] = sr

    def remember(self, entry: Entry) -> None:
        """A cache entry recorded by this run (committed with the round's batch)."""
        self.index[entry["cache_key"]] = entry

    def read_ahead(self, wanted: list[tuple[str, Step[Any], KeyParts]]) -> None:
        """Read at once what the lookups of these `(name, step, parts)` need from the
        store: the entries of their keys, then the histories of the steps whose key has
        none (what their misses are explained by). Two reads at most, however many."""
        known = self._prefetched()
        keys = [
            p.key
            for _, step, p in wanted
            if step.cache and p.key not in self.index and p.key not in known
        ]
        if not keys:
            return
        found = self.store.cache_get_many(keys, fast=True)
        self.ahead.update(found)
        self._check_ahead(found.values())
        missing = {k for k in keys if k not in found}
        self.absent |= missing
        steps = [n for n, _, p in wanted if p.key in missing and n not in self.histories]
        if steps:
            got = self.store.cache_histories(self.pipeline, steps, fast=True)
            self.histories.update({n: got.get(n, []) for n in steps})

    def lookup(
        self, name: str, step: Step[Any], parts: KeyParts, *, cache_only: bool = False
    ) -> tuple[Entry | None, Reason]:
        """`(entry, reason)` for a hit, `(None, reason)` for a miss. `cache_only` (a step
        outside a partial run's selection) consults the cache even for `cache=False`."""
        use_cache = step.cache or cache_only
        problems = []
        for cand, how in self._candidates(name, parts, use_cache):
            bad = self._first_bad(cand)
            if bad is None:
                run_id = cand.get("run_id")
                hit = functools.partial(explain_hit, parts, run_id, how)
                return cand, self._reason(parts, run_id, how, hit)
            problems.append(bad)
            if how == "hit":
                self.store.drop_cache_entries([parts.key])
                self.index.pop(parts.key, None)
                self._prefetched().pop(parts.key, None)
                self.ahead.pop(parts.key, None)
        if problems:
            msg = f"{problems[0]}; recomputed"
            if self.warn is not None:
                self.warn(name, msg)
            return None, {"cache": "miss", "summary": msg, "details": [msg]}
        if not use_cache:
            return None, {
                "cache": "disabled",
                "summary": "cache disabled for this step (cache=False)",
            }
        if self._missed is None:
            self._missed = self.store.cache_history(self.pipeline, name, fast=True)
        if not self._missed:  # a first miss: one reason object per code, shared
            first = functools.partial(explain_miss, parts, [])
            return None, self._reason(parts, None, "first", first)
        return None, explain_miss(parts, self._missed)

    def _reason(
        self, parts: KeyParts, run_id: str | None, how: str, make: Callable[[], Reason]
    ) -> Reason:
        """One reason object for the steps of one code with the same verdict (a map's
        children share it, and the row encoder encodes a shared object once)."""
        memo = (run_id, how, id(parts.code))
        got = self._reasons.get(memo)
        if got is None or got[0] is not parts.code:
            got = self._reasons[memo] = (parts.code, make())
        return got[1]

    def _candidates(self, name: str, parts: KeyParts, use_cache: bool) -> list[tuple[Entry, str]]:
        out = []
        self._missed = None  # the step's history, when the store's probe missed
        prior = self.resume.get(name)
        if prior is not None and prior["cache_key"] == parts.key:
            out.append(({"outputs": prior["outputs"], "run_id": prior["run_id"]}, "resumed"))
        if use_cache:
            key = parts.key
            entry = self.index.get(key) or self._prefetched().get(key) or self.ahead.get(key)
            if entry is None and key in self.absent:
                self._missed = self.histories.get(name)  # read ahead (None: not yet)
            elif entry is None:  # one read: the entry, or the history a miss is explained by
                entry, self._missed = self.store.cache_probe(
                    parts.key, self.pipeline, name, fast=True
                )
            if entry is not None:
                out.append((entry, "hit"))
        return out

    def _prefetched(self) -> dict[str, Entry]:
        """The store's likely hits for the run's steps, read once, at the first lookup
        (everywhere when checking an artifact costs a round trip: their checks begin)."""
        if self.prefetched is None:
            remote = not self.artifacts.is_local
            self.prefetched = self.store.cache_prefetch(self.pipeline, self.steps, remote)
            self._check_ahead(self.prefetched.values())
        return self.prefetched

    def _check_ahead(self, entries: Iterable[Entry]) -> None:
        """Begin checking the artifacts of entries likely to be hit, where a check is a
        round trip (`ArtifactStore.verify_soon`): they run concurrently, and each verdict
        is taken once, by the lookup that needs it (`_verdict`)."""
        if self.artifacts.is_local:
            return
        for entry in entries:
            for ref in entry_refs(entry):
                for f in ref.files():
                    if f.hash not in self.checks:
                        fut = self.artifacts.verify_soon(f)
                        if fut is not None:
                            self.checks[f.hash] = fut

    def _verdict(self, ref: ArtifactRef) -> str | None:
        """`verify(ref)`, or the verdict of a check begun ahead for it (used once)."""
        if not self.checks:
            return self.artifacts.verify(ref)
        for f in ref.files():
            fut = self.checks.pop(f.hash, None)
            problem = fut.result() if fut is not None else self.artifacts.verify(f)
            if problem:
                return problem
        return None

    def _first_bad(self, entry: Entry) -> str | None:
        """The first problem with the artifacts `entry` names, or None when all are sound."""
        for ref in entry_refs(entry):
            problem = self._verdict(ref)
            if problem:
                return problem
        return None
