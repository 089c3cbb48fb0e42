#!/usr/bin/env bash
# Create .venv with bridge installed (editable) and the JS client's dev dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
if [ -f client_js/package.json ]; then
  (cd client_js && if [ -f package-lock.json ]; then npm ci --silent --no-audit --no-fund --ignore-scripts; else npm install --silent --no-audit --no-fund --ignore-scripts; fi)
fi
