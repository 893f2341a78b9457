"""A container's view of an artifact store that is not a folder (object storage).

A container of the Docker executor has no network and never sees credentials, so it
cannot read an `s3://` store itself. `Staging` gives it a local folder instead, laid out
as a local artifact store (`ab/abcdef....<ext>`) and mounted read-only at its host path,
as a local store's root is: before an attempt starts, `stage` downloads the step's
file-backed inputs into it (inline inputs travel in the invocation itself); its
outputs, written to the attempt's scratch folder, go up with the store's own `adopt`
(hash and size checked, then one PUT or a multipart upload completed at its end, so a
torn upload is never visible).

Invariants:
* a staged file holds exactly the bytes its ref names: each is downloaded into a
  temporary file of the folder, re-hashed (`copy_to`), made readable by the container's
  user and only then renamed into place; a missing or corrupt object is an
  `ArtifactError` naming the input and the object, and no container is started;
* the inputs of one attempt are downloaded concurrently (a small thread pool: boto3's
  clients are thread-safe); an input two attempts need at once is downloaded once;
* a staged file is held by count and removed when the last attempt holding it is
  released, so the folder holds the inputs of the attempts in flight, nothing more;
  `close()` removes the folder.

Attempts running at the same time see each other's staged inputs, as with a local store
every container sees the whole store; nothing an attempt writes is ever staged.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

from orchestrator.artifacts.store import ArtifactRef, ArtifactStore
from orchestrator.errors import ArtifactError

WORKERS = 4  # concurrent downloads per executor


class Staging:
    """Inputs of container attempts, from `source` into the local store at `root`."""

    def __init__(self, source: ArtifactStore, root: Path) -> None:
        self.source, self.root = source, root
        self.local = ArtifactStore(root)
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}
        self._ready: dict[str, cf.Future[None]] = {}
        self._pool: cf.ThreadPoolExecutor | None = None

    def stage(self, inputs: dict[str, ArtifactRef]) -> list[ArtifactRef]:
        """Download what `inputs` (by input name) need as files; the refs held, to give to
        `release` after the attempt. On failure nothing stays held, and the error names
        the first input that could not be staged."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        named = [(name, f) for name, ref in inputs.items() for f in ref.files() if f.data is None]
        futures = [(name, ref, self._hold(ref)) for name, ref in named]
        held = [ref for _, ref, _ in futures]
        cf.wait([fut for _, _, fut in futures])  # all done, so `release` removes them all
        for name, _, fut in futures:
            try:
                fut.result()
            except ArtifactError as exc:
                self.release(held)
                raise ArtifactError(
                    f"input '{name}' cannot be staged for its container: {exc}"
                ) from None
        return held

    def _hold(self, ref: ArtifactRef) -> cf.Future[None]:
        with self._lock:
            self._held[ref.hash] = self._held.get(ref.hash, 0) + 1
            fut = self._ready.get(ref.hash)
            if fut is None or (fut.done() and fut.exception() is not None):
                if self._pool is None:
                    self._pool = cf.ThreadPoolExecutor(WORKERS, thread_name_prefix="orch-stage")
                fut = self._ready[ref.hash] = self._pool.submit(self._download, ref)
            return fut

    def _download(self, ref: ArtifactRef) -> None:
        dest = self.local.path(ref)
        dest.parent.mkdir(exist_ok=True)
        os.chmod(dest.parent, 0o755)
        tmp = dest.parent / f".tmp-stage-{ref.hash}"
        try:
            self.source.copy_to(ref, tmp)
            os.chmod(tmp, 0o644)  # the container's user (nobody) reads it
            os.replace(tmp, dest)
        except OSError as exc:
            raise ArtifactError(
                f"cannot stage artifact {ref.hash[:12]} in {self.root}: {exc.strerror or exc}"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)

    def release(self, refs: Iterable[ArtifactRef]) -> None:
        """The attempt that held `refs` is over: remove the files nobody holds now."""
        gone = []
        with self._lock:
            for ref in refs:
                left = self._held.get(ref.hash, 0) - 1
                if left > 0:
                    self._held[ref.hash] = left
                    continue
                self._held.pop(ref.hash, None)
                fut = self._ready.pop(ref.hash, None)
                if fut is not None and fut.done():
                    gone.append(ref)
        for ref in gone:
            self.local.path(ref).unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)
