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

# The HTML report is checked in a real browser (tests/report/test_html.py): install headless
# Chromium from the system's packages where this user can; without it that test is skipped.
if ! command -v chromium-headless-shell >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell) \
        >/tmp/bitscout-chromium.log 2>&1; then
      echo "Installed headless Chromium for the report test"
    else
      echo "Headless Chromium could not be installed (see /tmp/bitscout-chromium.log): the browser test is skipped"
    fi
  fi
fi

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
