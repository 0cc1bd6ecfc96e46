#!/usr/bin/env bash
# Start or stop a private PostgreSQL server on 127.0.0.1 for the test suite.
#
#   scripts/postgres.sh start DIR   -> prints the connection URL on stdout (last line)
#   scripts/postgres.sh stop DIR
#
# The server runs from a data directory of its own under DIR, owned by the `postgres`
# system user when run as root (initdb refuses root), with trust authentication on
# 127.0.0.1 only. When the server binaries are missing and we are root, they are
# installed with apt-get (PostgreSQL 15 is what these machines carry).
set -euo pipefail

action=${1:?usage: postgres.sh start|stop DIR}
dir=${2:?usage: postgres.sh start|stop DIR}

# A free port on 127.0.0.1 (another server, e.g. of an earlier run, may hold any fixed one);
# BITSCOUT_PG_PORT pins it. `stop` needs no port: pg_ctl finds the server by its data folder.
free_port() {
  local p
  for p in $(seq 55432 55532); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

bin=$(find_bin || true)
if [ -z "$bin" ]; then
  if [ "$action" = stop ]; then exit 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "PostgreSQL server not found: installing it with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2
    bin=$(find_bin)
  else
    echo "PostgreSQL server binaries not found and cannot install them (need root and apt-get)" >&2
    exit 1
  fi
fi

data="$dir/pgdata"
case "$action" in
  start)
    mkdir -p "$dir"
    port=${BITSCOUT_PG_PORT:-$(free_port)}
    if [ "$(id -u)" = 0 ]; then
      id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
      chown postgres "$dir"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1
    fi
    if ! as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >&2; then
      tail -n 5 "$dir/server.log" >&2 || true
      exit 1
    fi
    as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qtc \
      "SELECT 1 FROM pg_database WHERE datname='bitscout_test'" | grep -q 1 ||
      as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres bitscout_test
    echo "postgresql://postgres@127.0.0.1:$port/bitscout_test"
    ;;
  stop)
    if [ -f "$data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >&2 || true
    fi
    ;;
  *) echo "unknown action: $action" >&2; exit 2 ;;
esac
