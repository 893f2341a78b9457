"""A step's `FileInput` files as a container of the Docker executor sees them.

On the host a `FileInput` given by a relative path (`load(path="data/train.csv")`) is read
relative to the project folder, the folder the run was started in, and its content hash
enters the cache key there (`orchestrator.cache.keys`). A container's working folder is a
scratch folder of the attempt, so the container also gets:

* the project folder mounted read-only at its host path (for a step with a `FileInput`
  argument only, and only when no code mount holds it already), and
* in the attempt's working folder, one symbolic link per relative `FileInput` parameter, at
  the same relative path, to the file's host path in that mount.

The step then opens the very file the host hashed, at the path it was given, and cannot
write to it; the links go with the attempt's working folder. A file that a container
cannot see (outside the project folder and every folder mounted) fails the attempt with
one line naming the parameter and the path, before the container runs anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orchestrator.model.step import Step
from orchestrator.model.types import has_hash_content


class Unreachable(Exception):
    """A `FileInput` of the attempt is not in any folder its container sees."""


def file_arguments(step: Step[Any]) -> list[str]:
    """The names of the step's `FileInput` arguments."""
    return [a.name for a in step.arguments.values() if has_hash_content(a.annotation)]


def project_folder() -> Path:
    """The folder a relative `FileInput` path is read from: the run's working folder."""
    return Path.cwd().resolve()


def _under(path: Path, roots: Iterable[str | Path]) -> bool:
    return any(path == Path(r) or path.is_relative_to(r) for r in roots)


def data_mounts(step: Step[Any], mounts: Iterable[str]) -> tuple[str, ...]:
    """The project folder, if the step has a `FileInput` and no mount in `mounts` holds it."""
    if not file_arguments(step):
        return ()
    project = project_folder()
    return () if _under(project, mounts) else (str(project),)


def links(step: Step[Any], params: dict[str, Any], seen: Iterable[str | Path]) -> dict[str, Path]:
    """For each relative `FileInput` parameter, its path as given -> its host file; raises
    `Unreachable` for a file outside the folders `seen` (the container's mounts)."""
    project, roots = project_folder(), [project_folder(), *seen]
    out: dict[str, Path] = {}
    for name in file_arguments(step):
        value = params.get(name)
        if value is None:
            continue
        given = Path(value)
        target = (project / given).resolve()
        relative = os.path.normpath(given) if not given.is_absolute() else None
        if not _under(target, roots) or (relative or "").startswith(".."):
            raise Unreachable(
                f"parameter '{name}': {value} is outside the project folder {project} "
                "(the folder the run was started in), and a container sees no other files; "
                "move the file into the project folder"
            )
        if relative is not None:
            out[relative] = target
    return out


def place(found: dict[str, Path], work: Path) -> None:
    """Make the links of `links` in the attempt's working folder `work` (writable by the
    container's user, as the folders made on the way are)."""
    work.mkdir(mode=0o777, exist_ok=True)
    os.chmod(work, 0o777)
    for relative, target in found.items():
        link = work / relative
        for parent in reversed(link.relative_to(work).parents[:-1]):
            (work / parent).mkdir(mode=0o777, exist_ok=True)
            os.chmod(work / parent, 0o777)
        if not link.is_symlink():
            link.symlink_to(target)
