#!/usr/bin/env bash
# Set up, then run the whole test suite (unit + integration against a real RTSP server, real
# Mosquitto, SQLite and the local PostgreSQL, and the real detector on real footage).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
VENV="${MONITOR_VENV:-$PWD/.venv}"
source scripts/env.sh
printf '\n==> pytest\n'
exec "$VENV/bin/python" -m pytest "$@"
