#!/usr/bin/env bash
# Set up, then run every test: Python (pytest) and JavaScript (node --test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export BRIDGE_PYTHON="$PWD/.venv/bin/python"
export BRIDGE_AUDIT_DIR="${BRIDGE_AUDIT_DIR:-$(mktemp -d)}"  # test hosts keep their audit logs out of the home directory
.venv/bin/python -m pytest -q
if [ -f client_js/package.json ]; then
  (cd client_js && npm test --silent)
fi
