#!/usr/bin/env bash
# Runs the whole test suite inside .venv (called by `make test`, which CI runs through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONHASHSEED=0
exec .venv/bin/python -m pytest "$@"
