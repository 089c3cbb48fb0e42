#!/usr/bin/env bash
# Set up, then run every test: Python (pytest) and JavaScript (node --test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export BRIDGE_PYTHON="$PWD/.venv/bin/python"
# PyInstaller builds are cached in the checkout, shared by the pure and the compiled run.
export BRIDGE_TEST_BUNDLE_CACHE="${BRIDGE_TEST_BUNDLE_CACHE:-$PWD/.build/bundle-cache}"
if [ -z "${BRIDGE_AUDIT_DIR:-}" ]; then  # test hosts keep their audit logs out of the home directory
  BRIDGE_AUDIT_DIR="$(mktemp -d -t bridge-test-audit-XXXXXXXX)"
  trap 'rm -rf "$BRIDGE_AUDIT_DIR"' EXIT
  export BRIDGE_AUDIT_DIR
fi
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
# The Python suite again with the hot path compiled by mypyc, as BRIDGE_COMPILE=1 wheels ship it
# (hatch_build.py), in a copy of the checkout (packaging is tested once, above).
if command -v gcc >/dev/null; then
  root="$PWD"
  tree="$(.venv/bin/python scripts/compiled_tree.py)"
  echo "The Python tests again, compiled (in $tree):"
  (cd "$tree" && PYTHONPATH="$tree" BRIDGE_EXPECT_COMPILED=1 "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider \
    --ignore=tests/test_package.py --ignore=tests/test_quickstart.py)
fi
