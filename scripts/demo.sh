#!/usr/bin/env bash
# Set up, then run the demo: a Node script spawns the Python sidecar and talks to it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BRIDGE_PYTHON="$PWD/.venv/bin/python" node examples/demo.mjs
