"""The Tauri app of test_webview.py, on pytauri-wheel's prebuilt Tauri 2 runtime with the shell
plugin: ``python tauri_app.py SRC_TAURI CONFIG_JSON`` runs SRC_TAURI's tauri.conf.json and
capabilities/ with CONFIG_JSON merged over the config (as ``tauri --config`` does), until its
stdin closes.

Tauri runs a sidecar from the folder of the running executable, so the test starts this with
a copy of the Python interpreter (a ``venv --copies``) beside which the sidecar stands."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from pytauri import AppHandle
from pytauri_plugins import shell
from pytauri_wheel.lib import builder_factory, context_factory


def main(src_tauri: str, config: str) -> int:
    context = context_factory(Path(src_tauri).resolve(), tauri_config=config)

    def exit_at_eof(handle: AppHandle) -> None:
        """The test closes stdin to end the app the way a user would: Tauri's own exit. Not a
        daemon thread: one still inside the extension when Python finalises aborts the process."""
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), handle.exit(0))).start()

    app = builder_factory().build(context, invoke_handler=None, plugins=[shell.init()], setup=exit_at_eof)
    return app.run_return()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
