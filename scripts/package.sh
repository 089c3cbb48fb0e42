#!/usr/bin/env bash
# Build what users install, from this checkout, into dist/: the Python wheel (bridge-sidecar)
# and the JS client's npm tarball (@bridge-rpc/client). Neither is published yet; this is how
# to install both as the docs say, from files:
#   pip install dist/bridge_sidecar-<version>-py3-none-any.whl
#   npm install /path/to/dist/bridge-rpc-client-<version>.tgz
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
mkdir -p dist
rm -f dist/bridge_sidecar-*.whl dist/bridge-rpc-client-*.tgz
.venv/bin/python -m pip wheel . --no-deps --no-build-isolation --quiet --disable-pip-version-check -w dist
(cd client_js && npm pack --silent --pack-destination ../dist >/dev/null)
wheel=$(ls dist/bridge_sidecar-*.whl)
tarball=$(ls dist/bridge-rpc-client-*.tgz)
echo "built $wheel and $tarball; install them with:"
echo "  pip install $PWD/$wheel"
echo "  npm install $PWD/$tarball"
