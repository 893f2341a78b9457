"""Garbage collection of the artifact store: delete files that nothing references.

What is kept, whatever else `collect` is told:

* every artifact the metadata store references (kept runs' step runs, the cache index,
  model versions, monitor reports): `GcStore.referenced_artifacts`;
* every artifact a run still marked running has recorded so far, even with `keep_runs`;
* every file younger than the grace period, referenced or not. A live run writes an
  output's file, then records it: between the two, and for files of runs this store
  cannot see (another metadata database on a shared artifact folder), the file's age is
  the only sign that it is wanted. Writing content that is already stored refreshes the
  file's time, so a deduplicated output is as young as a new one. The same age rule
  holds for the temporary files of writes not yet renamed into place: one older than the
  grace period was left by a process killed mid-write, and goes.

In object storage (`s3://`) the same rules hold with objects for files, an object's
last-modified time for its age, and unfinished multipart uploads (a writer killed
mid-upload) for temporary files: one begun before the grace period is aborted.

The references are read before the files are listed: a file written after that is
younger than the grace period by construction, and never taken for garbage.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, Protocol

from orchestrator.artifacts.store import ArtifactStore, StoredObject, file_hashes
from orchestrator.errors import ParamError
from orchestrator.state import RunStatus

DEFAULT_GRACE = "10m"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


class GcStore(Protocol):
    """What garbage collection reads from (and prunes in) the metadata store."""

    def referenced_artifacts(self, keep_runs: int | None = None) -> set[str]: ...

    def list_runs(
        self, limit: int = 20, pipeline: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]: ...

    def step_runs(self, run_id: str) -> list[dict[str, Any]]: ...

    def prune_cache(self, keep: set[str]) -> int: ...


@dataclasses.dataclass
class GcReport:
    files: int  # artifact files found
    removed: list[str]  # the paths (or object URLs) removed
    freed: int  # bytes
    young: int  # unreferenced files kept for their age
    live_runs: list[str]  # runs still running, whose artifacts were kept
    grace: str
    dry_run: bool
    temps: list[str] = dataclasses.field(default_factory=list)  # torn writes' leftovers

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        out = [
            f"{verb} {len(self.removed)} of {self.files} artifact files ({self.freed / 1e6:.1f} MB)"
        ]
        if self.temps:
            s = "" if len(self.temps) == 1 else "s"
            out.append(f"{verb} {len(self.temps)} temporary file{s} of interrupted writes")
        if self.young:
            s = "" if self.young == 1 else "s"
            out.append(
                f"kept {self.young} unreferenced artifact file{s} younger than "
                f"{self.grace} (--grace)"
            )
        for run_id in self.live_runs:
            out.append(f"run {run_id} is still running: kept every artifact it has recorded")
        return out


def parse_grace(text: str) -> float:
    """`"10m"`, `"90s"`, `"2h"`, `"1d"`, `"0"` -> seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise ParamError(
            f"--grace '{text}' is not a duration; give a number with an optional unit "
            "s, m, h or d, e.g. --grace 10m or --grace 0"
        )
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _live_runs(store: GcStore) -> tuple[list[str], set[str]]:
    """Ids of the runs still running (a dead runner's run is marked interrupted by the
    store as it lists them) and every artifact hash they have recorded."""
    ids: list[str] = []
    hashes: set[str] = set()
    for run in store.list_runs(limit=1000, status=RunStatus.RUNNING):
        if run["status"] != RunStatus.RUNNING:
            continue
        ids.append(run["id"])
        for sr in store.step_runs(run["id"]):
            hashes.update(h for o in sr.get("outputs") or [] for h in file_hashes(o))
            hashes.update(h for h in (sr.get("inputs") or {}).values() if isinstance(h, str))
    return ids, hashes


def collect(
    store: GcStore,
    artifacts: ArtifactStore,
    *,
    keep_runs: int | None = None,
    grace: str = DEFAULT_GRACE,
    dry_run: bool = False,
) -> GcReport:
    """Delete (unless `dry_run`) the artifact files that may go; say what was kept."""
    grace_s = parse_grace(grace)
    started = time.time()
    live, live_hashes = _live_runs(store)
    keep = store.referenced_artifacts(keep_runs) | live_hashes
    files = artifacts.listing()
    doomed: list[StoredObject] = []
    young = 0
    for obj in files:
        if obj.hash in keep:
            continue
        if obj.mtime <= started - grace_s:
            doomed.append(obj)
        else:
            young += 1
    temps = [t for t in artifacts.torn_writes() if t.mtime <= started - grace_s]
    freed = sum(o.size for o in doomed + temps)
    if not dry_run:
        artifacts.remove(doomed + temps)
        gone = {o.name for o in doomed}
        store.prune_cache(keep | {o.hash for o in files if o.name not in gone})
    names = [o.name for o in doomed]
    return GcReport(len(files), names, freed, young, live, grace, dry_run, [t.name for t in temps])
