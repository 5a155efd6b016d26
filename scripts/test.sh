#!/usr/bin/env bash
# Run the whole test suite against real services: starts Redis and a Kafka broker (scripts/services.sh),
# runs pytest, stops the services. Extra arguments go to pytest. Exit code: pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
export PYTHON

PYTHON="$PYTHON" bash scripts/services.sh start
trap 'bash scripts/services.sh stop' EXIT
set -a
. .services/env
set +a
"$PYTHON" -m pytest "$@"
