#!/usr/bin/env bash
# Print the real parts the tests can use that this machine lacks (one per line, "what: binary").
# The tests skip what is missing, or fail under CI=true; scripts/test.sh reports the list once.
missing=()
command -v redis-server >/dev/null || missing+=("Redis (shared state, collab, cache): redis-server")
command -v chromium >/dev/null || missing+=("Chromium (the Electron renderer): chromium")
command -v Xvfb >/dev/null || missing+=("a virtual screen (the Tauri webview): Xvfb")
command -v xauth >/dev/null || missing+=("X authority (the Tauri webview): xauth")
[ -n "$(ldconfig -p 2>/dev/null | grep libwebkit2gtk-4.1.so.0)" ] || missing+=("WebKitGTK (the Tauri webview): libwebkit2gtk-4.1-0")
command -v gcc >/dev/null || missing+=("a C compiler (the compiled run of the Python tests, mypyc): gcc")
printf '%s\n' "${missing[@]}"
