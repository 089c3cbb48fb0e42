#!/usr/bin/env bash
# Set up, then run every test: Python (pytest) and JavaScript (node --test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export BRIDGE_PYTHON="$PWD/.venv/bin/python"
export BRIDGE_AUDIT_DIR="${BRIDGE_AUDIT_DIR:-$(mktemp -d)}"  # test hosts keep their audit logs out of the home directory
missing="$(bash scripts/system-parts.sh)"
if [ -n "$missing" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "CI needs every real part; missing:" >&2; echo "$missing" >&2; exit 1
  fi
  echo "Skipping the tests that need what this machine lacks:"; echo "$missing" | sed 's/^/  - /'
  echo "Install them with: sudo bash scripts/system-packages.sh"
fi
.venv/bin/python -m pytest -q
if [ -f client_js/package.json ]; then
  (cd client_js && npm test --silent)
fi
