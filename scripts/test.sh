#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, slow integration tests included:
#   scripts/test.sh [pytest options]      e.g. scripts/test.sh -m "not slow" for the fast ones only
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PYTHONUNBUFFERED=1
set +e
.venv/bin/python -m pytest -q "$@"
status=$?
set -e
# pytest exits 5 when no test was collected: that is a failure here, not a pass.
exit $status
