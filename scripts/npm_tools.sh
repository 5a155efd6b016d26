#!/usr/bin/env bash
# Install the npm packages the JavaScript e2e tests use (esbuild, @sentry/node) into the cache folder
# tests/e2e/npm_tools.py reads ($MINISENTRY_NPM_CACHE, default ~/.cache/minisentry/npm). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
"$PYTHON" -c "from tests.e2e.npm_tools import npm_root; print(npm_root())"
