"""One factory from a configured location to an artifact store.

`open_artifacts(location)`: an `s3://bucket/prefix` URL opens an `ObjectArtifactStore`
(boto3 imported then, never for a local store); anything else is a folder path, opened as
the local `ArtifactStore` exactly as before. Workspace, remote workers (containers, Dask)
and forked children all open their store here, from the store's `location` string.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.artifacts.store import INLINE_MAX, ArtifactStore


def is_object_url(location: str | Path) -> bool:
    return isinstance(location, str) and location.startswith("s3://")


def open_artifacts(location: str | Path, inline_max: int = INLINE_MAX) -> ArtifactStore:
    """The artifact store at `location` (a folder path or an `s3://` URL)."""
    if is_object_url(location):
        from orchestrator.artifacts.objects import ObjectArtifactStore

        return ObjectArtifactStore(str(location), inline_max)
    return ArtifactStore(Path(location), inline_max)
