#!/usr/bin/env bash
# The Docker image the integration tests run steps in. Idempotent: starts dockerd and
# builds the base image if needed (scripts/base-image.sh), then builds
# orchestrator-test:<hash of the project's sources and this script> unless it exists, with
# the extras a Dask worker needs (dask, postgres, s3). Prints the tag.
set -euo pipefail
cd "$(dirname "$0")/.."
exec 9>/tmp/orchestrator-test-image.lock
flock -w 1200 9 || { echo "test-image.sh: could not lock /tmp/orchestrator-test-image.lock in 1200 s" >&2; exit 1; }
# Without fd 9 (the lock) and with stdout closed off: a dockerd started from here must not
# inherit the lock or the caller's pipes, or it would hold them for as long as it runs.
bash scripts/base-image.sh orchestrator-base:py311 9>&- </dev/null >&2
hash=$(cat pyproject.toml scripts/test-image.sh $(git ls-files orchestrator steps pipelines 2>/dev/null || find orchestrator steps pipelines -name '*.py' | sort) | sha1sum | cut -c1-12)
tag="orchestrator-test:$hash"
if ! docker image inspect "$tag" >/dev/null 2>&1; then
  python3 -m orchestrator image build --tag "$tag" --base orchestrator-base:py311 \
    --extra dask --extra postgres --extra s3 9>&- </dev/null >&2
fi
echo "$tag"
