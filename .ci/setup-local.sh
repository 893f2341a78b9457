#!/usr/bin/env bash
# CI entry point: install everything from nothing, start the services the integration
# tests use (dockerd with a locally built image, PostgreSQL on loopback), then run the
# README's test command. Each step is idempotent; the tests' fixtures call the same
# scripts, so they also work without this file.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
python3 -m pip install -q -e '.[test]'
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null \
    || ! command -v pg_lsclusters >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq docker.io debootstrap postgresql >/dev/null
fi
bash scripts/start-postgres.sh >/dev/null
bash scripts/test-image.sh
bash scripts/install-browser.sh >/dev/null  # Debian's chromium for tests/ui
