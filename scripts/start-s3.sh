#!/usr/bin/env bash
# Start a real S3-compatible server (moto's server, from PyPI's `moto[server]`, installed by
# the test extra) for tests, benchmarks and CI.
#
#   usage: bash scripts/start-s3.sh
#
# Idempotent, and safe to run from several processes at once (e.g. one per pytest-xdist
# worker): the whole script runs under an exclusive flock. If nothing answers on
# ORCH_S3_PORT (default 5055) of ORCH_S3_HOST (default 127.0.0.1), it starts
# `python -m moto.server` there in the background (log: /tmp/orch-s3-server.log) and
# waits until it answers. It creates nothing else (buckets are the caller's). The server
# listens on loopback: a container run with host networking reaches it at the same URL.
# Any access key and secret work against it. The last line of stdout is the endpoint URL,
#   http://127.0.0.1:5055
# everything else goes to stderr. Python: ORCH_S3_PYTHON, else python3.
set -euo pipefail

host=${ORCH_S3_HOST:-127.0.0.1}
port=${ORCH_S3_PORT:-5055}
py=${ORCH_S3_PYTHON:-python3}
url="http://$host:$port"

lock=${ORCH_S3_LOCK:-/tmp/orch-start-s3.lock}
exec 9>>"$lock"
flock -w 120 9 || { echo "start-s3.sh: could not lock $lock in 120 s" >&2; exit 1; }

answers() { curl -fsS -o /dev/null --max-time 2 "$url/moto-api/" 9>&- 2>/dev/null; }

if ! answers; then
  if ! "$py" -c 'import moto.server, flask' 9>&- 2>/dev/null; then
    echo "start-s3.sh: installing moto[server] for $py" >&2
    "$py" -m pip install -q 'moto[server]>=5' >&2 9>&-
  fi
  echo "start-s3.sh: starting moto's S3 server on $url" >&2
  # the server must not inherit fd 9 (the lock), or the lock would be held while it runs
  nohup setsid "$py" -m moto.server -H "$host" -p "$port" \
    >>/tmp/orch-s3-server.log 2>&1 9>&- </dev/null &
  for _ in $(seq 1 120); do
    answers && break
    sleep 0.25
  done
  answers || { echo "start-s3.sh: the server did not answer on $url (see /tmp/orch-s3-server.log)" >&2; exit 1; }
fi
echo "$url"
