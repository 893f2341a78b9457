#!/usr/bin/env bash
# Make a headless browser available to the browser tests (tests/ui/test_browser.py):
# Debian's `chromium` package, installed with apt when `chromium` is not on PATH.
# Playwright drives it through `executable_path`; we never run `playwright install`
# (which would download a browser build from the internet). The playwright Python
# package itself comes from the project's `test` extra.
#
# Idempotent: a second run only prints the path. Prints the chromium path on stdout
# (last line); apt's chatter goes to stderr. Needs root for apt.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# one install at a time (pytest-xdist workers may call this together)
exec 9>>/tmp/orch-install-browser.lock
flock -w 900 9 || { echo "install-browser.sh: could not take the install lock" >&2; exit 1; }
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-browser.sh: chromium is missing and apt needs root; run as root" >&2
    exit 1
  fi
  apt-get update -qq >&2 9>&-
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2 9>&-
fi

path="$(command -v chromium)"
# The browser must start headless (as root it needs --no-sandbox): fail here, not in a test.
# (Debian's wrapper may print a harmless shell warning about /dev/shm; keep the version.)
if ! version="$("$path" --headless --no-sandbox --version 2>&1)"; then
  echo "install-browser.sh: $path does not start:" >&2
  echo "$version" >&2
  exit 1
fi
echo "$version" | grep -E '^Chromium ' >&2 || true
echo "$path"
