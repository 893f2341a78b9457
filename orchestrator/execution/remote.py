"""Running a step away from the orchestrating process: in a container or on a Dask worker.

`run_invocation(invocation_json, ...)` is the whole contract of a remote worker: plain
JSON in, plain JSON out. It resolves the step by reference (`module:qualname` or
`/path/file.py:qualname`), validates the parameters back into their types, reads inputs
from the artifact store named by its location (a folder every worker sees, or an `s3://`
URL for workers that share no disk; verifying hashes), writes outputs to that store (or
to a scratch folder the executor adopts), and never raises. Small values are inline: an
input's bytes come in its reference, an output's go back in the result. An object store
is opened once per worker process and kept (its client and connections are worth
reusing).

As a command (the entry point of our container images)::

    python -m orchestrator.execution.remote INVOCATION.json RESULT.json \
        --artifacts LOCATION [--out DIR]

LOCATION is a folder or an `s3://` URL. This module is a composition root, like the CLI: it
may open the metadata store, which a step reaches through `current().registry` when
`ORCH_DB_URL` is given.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.artifacts.location import is_object_url, open_artifacts
from orchestrator.artifacts.store import ArtifactStore
from orchestrator.execution.worker import (
    StepInvocation,
    StepResult,
    execute,
    pack_error,
    resolve_step,
    revalidate_params,
)


def _artifacts(location: str) -> ArtifactStore:
    """The artifact store at `location`: a folder, or an object store's URL (kept)."""
    if is_object_url(location):
        return _object_store(location)
    return open_artifacts(location)


@functools.cache
def _object_store(url: str) -> ArtifactStore:
    return open_artifacts(url)


@functools.cache
def _registry_factory(db_url: str | None, location: str) -> Any:
    if not db_url:
        return None

    def make() -> Any:
        from orchestrator.store.registry import StoreRegistry

        return StoreRegistry(_store(db_url), _artifacts(location))

    return make


@functools.cache
def _store(db_url: str) -> Any:
    from orchestrator.store.metadata import MetadataStore

    return MetadataStore(db_url)


def run_invocation(
    invocation: dict[str, Any],
    artifact_location: str,
    db_url: str | None = None,
    out_dir: str | None = None,
) -> dict[str, Any]:
    """Run one step attempt described by plain JSON; return the StepResult as plain JSON."""
    try:
        inv = StepInvocation.from_json(invocation)
        step = resolve_step(inv.step_ref)
        inv.params = revalidate_params(step, inv.params)
    except BaseException as exc:  # noqa: BLE001 - failures cross the boundary as data
        text, tb = pack_error(exc)
        msg = f"cannot load step '{invocation.get('step')}' ({invocation.get('step_ref')}): {text}"
        return StepResult(False, [], msg, tb, "", 0.0).to_json()
    try:
        artifacts = _artifacts(artifact_location)
    except BaseException as exc:  # noqa: BLE001 - failures cross the boundary as data
        msg = f"step '{inv.step}': cannot open the artifact store {artifact_location}: "
        return StepResult(False, [], msg + pack_error(exc)[0], None, "", 0.0).to_json()
    out = ArtifactStore(Path(out_dir)) if out_dir else None
    factory = _registry_factory(db_url, artifact_location)
    return execute(inv, step, artifacts, registry_factory=factory, out=out).to_json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.execution.remote")
    parser.add_argument("invocation", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    return run_files(args.invocation, args.result, args.artifacts, args.out)


def run_files(invocation_file: Path, result_file: Path, artifacts: str, out: str | None) -> int:
    """`main` without its argument parsing (the warm container's agent calls this): the
    invocation read from a file, the result written atomically; 0 if the step succeeded."""
    invocation = json.loads(invocation_file.read_text())
    result = run_invocation(invocation, artifacts, os.environ.get("ORCH_DB_URL"), out)
    fd, tmp = tempfile.mkstemp(dir=result_file.parent, prefix=".result-")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f)
    os.replace(tmp, result_file)
    if not result["ok"]:
        print(f"step '{invocation.get('step')}' failed: {result['error']}", file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
