"""Where a run's state lives: the one place that composes the stores and the executors.

`Workspace(home=None, db_url=None, artifacts=None)` reads `ORCH_HOME` (default
`./.orchestrator`), `ORCH_DB_URL` (default: the SQLite file `orchestrator.db` in the home)
and `ORCH_ARTIFACTS` (default: `artifacts/` in the home; a folder path, or
`s3://bucket/prefix` for object storage, see `artifacts.objects`) for whatever is not
given, and
opens the metadata store and artifact store on first use. The CLI and the Python API
both build theirs here, so a run made by one front end is seen, and its cache hit, by
the other.

Invariants: nothing is opened or created at construction; the home is checked (a folder,
not under /proc, writable when something must be written) before anything is written
into it, and every problem with it is one `OrchestratorError` naming the path.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.errors import StoreError

DEFAULT_HOME = ".orchestrator"


class HomeError(StoreError):
    """`ORCH_HOME` (or `home=`) cannot hold the metadata store, artifacts and logs."""


def check_home(home: Path, *, writable: bool) -> None:
    """Create `home` if needed; raise one `HomeError` naming it when it cannot be used."""
    resolved = home.resolve()
    label = f"ORCH_HOME {str(home)!r}"
    if resolved == Path("/proc") or Path("/proc") in resolved.parents:
        raise HomeError(f"{label} is under /proc, which cannot hold files; use a folder on disk")
    if home.exists() and not home.is_dir():
        raise HomeError(f"{label} is a file, not a folder; point ORCH_HOME at a folder")
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HomeError(
            f"cannot create {label} ({exc.strerror or exc}); point ORCH_HOME at a writable folder"
        ) from None
    if writable and not os.access(home, os.W_OK):
        raise HomeError(
            f"{label} is not writable ({os.strerror(_why_unwritable(home))}); "
            "point ORCH_HOME at a writable folder"
        )


def _why_unwritable(home: Path) -> int:
    try:
        probe = home / f".write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        return exc.errno or errno.EACCES
    return errno.EACCES


def _is_url(location: str) -> bool:
    return location.startswith("s3://")


class Workspace:
    """The configured metadata store, artifact store, log folder and executors."""

    def __init__(
        self,
        home: str | Path | None = None,
        db_url: str | None = None,
        artifacts: str | Path | None = None,
    ) -> None:
        self.home = Path(home if home is not None else os.environ.get("ORCH_HOME", DEFAULT_HOME))
        self._own_db = not (db_url or os.environ.get("ORCH_DB_URL"))
        self.db_url = (
            db_url or os.environ.get("ORCH_DB_URL") or f"sqlite:///{self.home / 'orchestrator.db'}"
        )
        self.artifacts_location: str | Path = (
            artifacts or os.environ.get("ORCH_ARTIFACTS") or self.home / "artifacts"
        )
        if not isinstance(self.artifacts_location, str) or not _is_url(self.artifacts_location):
            self.artifacts_location = Path(self.artifacts_location)
        self._store: Any = None
        self._artifacts: Any = None

    @property
    def logs_dir(self) -> Path:
        """Live step logs: `logs/RUN/STEP.log` while a run is going."""
        return self.home / "logs"

    def ensure_writable(self) -> None:
        """Before a run: the home must take the store, artifacts and live logs."""
        check_home(self.home, writable=True)

    @property
    def store(self) -> Any:
        if self._store is None:
            from orchestrator.store.metadata import MetadataStore

            db_file = self.home / "orchestrator.db"
            check_home(self.home, writable=self._own_db and not db_file.exists())
            forced = os.environ.get("ORCH_DB_READONLY", "") not in ("", "0")
            self._store = MetadataStore(self.db_url, readonly=True if forced else None)
        return self._store

    @property
    def artifacts(self) -> Any:
        if self._artifacts is None:
            from orchestrator.artifacts.location import open_artifacts

            self._artifacts = open_artifacts(self.artifacts_location)
        return self._artifacts

    def registry(self) -> Any:
        from orchestrator.store.registry import StoreRegistry

        return StoreRegistry(self.store, self.artifacts)

    def registry_factory(self) -> Callable[[], Any]:
        """A factory safe to call in a forked child (which opens its own connection pool)."""
        parent, url, root = os.getpid(), self.db_url, self.artifacts_location

        def make() -> Any:
            from orchestrator.artifacts.location import open_artifacts
            from orchestrator.store.metadata import MetadataStore
            from orchestrator.store.registry import StoreRegistry

            if os.getpid() == parent:
                return self.registry()
            return StoreRegistry(MetadataStore(url), open_artifacts(root))

        return make

    def executors(self, options: dict[str, Any] | None = None) -> Callable[[str], Any]:
        """`name -> Executor`, with backend settings (dask_address, image) from `options`."""
        from orchestrator.execution.backends import make_executor

        factory = self.registry_factory()
        opts = {
            "db_url": self.db_url,
            "dask_address": os.environ.get("ORCH_DASK_ADDRESS"),
            "image": os.environ.get("ORCH_IMAGE"),
        }
        opts.update({k: v for k, v in (options or {}).items() if v is not None})

        def make(name: str) -> Any:
            return make_executor(name, self.artifacts, registry_factory=factory, options=opts)

        return make

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
