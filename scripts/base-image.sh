#!/usr/bin/env bash
# Build a local Docker image with Debian's Python 3.11 and no registry pull:
# starts a Docker engine if none answers, debootstraps a minimal Debian into a
# folder and imports it as an image. Idempotent; about a minute on a new machine.
#
#   usage: base-image.sh [TAG]        (default TAG: orchestrator-base:py311)
#
# Derive the project's own test image from it with a Dockerfile
# (FROM orchestrator-base:py311, copy in wheels built on the host, pip install --no-index).
set -euo pipefail
tag=${1:-orchestrator-base:py311}
export DEBIAN_FRONTEND=noninteractive

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  # detached, with no inherited descriptors beyond its own log
  (setsid dockerd </dev/null >/tmp/dockerd.log 2>&1 9>&- &)
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/dockerd.log" >&2; exit 1; }
fi

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag already present"; exit 0
fi

# The Debian mirror this machine already uses (never hard-coded here).
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "no Debian mirror found in apt sources" >&2; exit 1; }

root=$(mktemp -d /tmp/rootfs.XXXXXX)
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$root" "$mirror" >/tmp/debootstrap.log 2>&1 \
  || { echo "debootstrap failed; see /tmp/debootstrap.log" >&2; exit 1; }
tar -C "$root" -c . | docker import -c 'CMD ["python3"]' - "$tag" >/dev/null
rm -rf "$root"
docker run --rm --network none "$tag" python3 -c 'import sys; print("image ok:", sys.version.split()[0])'
