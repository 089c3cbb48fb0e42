#!/usr/bin/env bash
# Install the system packages the real-part tests use (Debian/Ubuntu; as root or with sudo):
# redis-server (shared state), chromium (the Electron renderer), and for the Tauri webview
# libwebkit2gtk-4.1-0 with xvfb and xauth (a virtual screen), gcc (mypyc compiles the hot path).
set -euo pipefail
PACKAGES=(redis-server chromium xvfb xauth libwebkit2gtk-4.1-0 gcc)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
