#!/usr/bin/env bash
# Runs the whole test suite inside .venv (called by `make test`, which CI runs through .ci/run).
#
# Starts a private PostgreSQL server on 127.0.0.1 for the multi-worker tests and stops it
# at the end. When it cannot be started, those tests are skipped with the reason, unless
# BITSCOUT_REQUIRE_POSTGRES=1 (set by CI), which makes them fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONHASHSEED=0
export MPLBACKEND=Agg

pgdir=$(mktemp -d /tmp/bitscout-pg.XXXXXX)
cleanup() { bash scripts/postgres.sh stop "$pgdir" || true; rm -rf "$pgdir"; }
trap cleanup EXIT
if url=$(bash scripts/postgres.sh start "$pgdir" 2>"$pgdir.err"); then
  export BITSCOUT_TEST_POSTGRES_URL=$(printf '%s\n' "$url" | tail -n 1)
  echo "PostgreSQL for tests: $BITSCOUT_TEST_POSTGRES_URL"
else
  export BITSCOUT_TEST_POSTGRES_ERROR="$(tail -n 5 "$pgdir.err" 2>/dev/null)"
  echo "PostgreSQL could not be started: $BITSCOUT_TEST_POSTGRES_ERROR"
fi
rm -f "$pgdir.err"
.venv/bin/python -m pytest "$@"
