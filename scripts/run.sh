#!/usr/bin/env bash
# Set up (idempotent) and run the whole job on the default family: scripts/run.sh [capforecast run options]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/capforecast run "$@"
