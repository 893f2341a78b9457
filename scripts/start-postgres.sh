#!/usr/bin/env bash
# Start a real PostgreSQL server on loopback for tests and benchmarks (Debian's packages).
#
#   usage: bash scripts/start-postgres.sh [DBNAME]      (DBNAME defaults to "orch")
#
# Idempotent, and safe to run from several processes at once (e.g. one per pytest-xdist
# worker): the whole script runs under an exclusive flock. It
#   1. apt-installs postgresql if no server binary is present (`apt-get update -qq` first);
#   2. creates a cluster if none exists, and starts the first cluster (or the one named by
#      ORCH_PG_CLUSTER=VERSION/NAME) if it is offline;
#   3. creates (or resets) the login role orch / password orch with CREATEDB;
#   4. creates database DBNAME owned by orch if missing;
# and prints the SQLAlchemy URL of DBNAME on its last line of stdout, e.g.
#   postgresql+psycopg://orch:orch@127.0.0.1:5432/orch
# Everything else goes to stderr. Needs root (or sudo) for apt and the postgres account.
set -euo pipefail

db=${1:-orch}
if [[ ! $db =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
  echo "start-postgres.sh: database name must match [A-Za-z_][A-Za-z0-9_]*, got '$db'" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive

# Commands run without fd 9 (the lock): a server they start must not inherit it, or the
# lock would be held for as long as the server runs.
if [[ $(id -u) -eq 0 ]]; then
  as_root() { "$@" 9>&-; }
  as_pg() { (cd / && runuser -u postgres -- "$@" 9>&-); }
else
  as_root() { sudo -n "$@" 9>&-; }
  as_pg() { (cd / && sudo -n -u postgres "$@" 9>&-); }
fi

lock=${ORCH_PG_LOCK:-/tmp/orch-start-postgres.lock}
exec 9>>"$lock"
flock -w 600 9 || { echo "start-postgres.sh: could not lock $lock in 600 s" >&2; exit 1; }

server_installed() {
  command -v pg_lsclusters >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}
if ! server_installed; then
  echo "start-postgres.sh: installing postgresql" >&2
  as_root apt-get update -qq >&2
  as_root apt-get install -y -qq postgresql >/dev/null
fi

if [[ -z $(pg_lsclusters -h) ]]; then  # packages installed without a cluster
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  as_root pg_createcluster "$ver" main >&2
fi
# ORCH_PG_CLUSTER=VERSION/NAME picks a cluster; default: the first one listed
want=${ORCH_PG_CLUSTER:-}
read -r ver name port status _ < <(
  pg_lsclusters -h | awk -v want="$want" 'want == "" || $1 "/" $2 == want' | head -n 1
) || { echo "start-postgres.sh: no cluster ${want:-at all} (see pg_lsclusters)" >&2; exit 1; }
if [[ $status != online* ]]; then
  # under Docker, policy-rc.d keeps apt from starting it; pg_ctlcluster waits until it is up
  as_root pg_ctlcluster "$ver" "$name" start >&2
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$port" 9>&- && break
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$port" >&2

psql_pg() { as_pg psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres -tA "$@"; }
if [[ -z $(psql_pg -c "select 1 from pg_roles where rolname = 'orch'") ]]; then
  psql_pg -c "create role orch with login createdb password 'orch'"
else
  psql_pg -c "alter role orch with login createdb password 'orch'"
fi
if [[ -z $(psql_pg -c "select 1 from pg_database where datname = '$db'") ]]; then
  as_pg createdb -p "$port" -O orch "$db"
fi
echo "postgresql+psycopg://orch:orch@127.0.0.1:$port/$db"
