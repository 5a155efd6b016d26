#!/usr/bin/env bash
# Run the whole test suite against real services: starts Redis and a Kafka broker (scripts/services.sh),
# runs pytest, stops the services. Extra arguments go to pytest. Exit code: pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
export PYTHON

# The web UI's browser test (tests/web/test_browser.py) drives Debian's chromium through its
# chromium-driver: install them when missing; under CI=true a missing browser fails the run.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "[test] installing chromium and chromium-driver for the browser test" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
            || echo "[test] WARNING: could not install chromium" >&2
    fi
    if [ "${CI:-}" = true ] && { ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; }; then
        echo "[test] ERROR: chromium and chromedriver are needed for the browser test under CI" >&2
        exit 1
    fi
fi

PYTHON="$PYTHON" bash scripts/services.sh start
trap 'bash scripts/services.sh stop' EXIT
set -a
. .services/env
set +a
"$PYTHON" -m pytest "$@"
